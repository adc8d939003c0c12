""""Who copied it best?" as a table: rank, name, score and reason, failures included, and the
same as a CSV a spreadsheet opens safely. Pure functions: the page renders the rows, the API
returns them."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .text import spreadsheet_safe

COLUMNS = ("rank", "name", "probability", "error")   # the /rank API's keys, kept as they were
CSV_HEADER = ("rank", "name", "P(same expression)", "reason")
MAX_NAME = 40


def display_name(path) -> str:
    """What the table calls a photo: its file name without the extension ("Ana" for Ana.jpg)."""
    return Path(str(path)).stem


def capture_name(typed, taken) -> str:
    """A file name for a capture: the typed name made safe for a file ("Ana.jpg"), else
    "capture N"; "Ana (2).jpg" when the set already holds an Ana."""
    stem = re.sub(r"[^\w .'-]+", " ", str(typed or "")).strip(" .")[:MAX_NAME].strip()
    used = {display_name(p) for p in taken}
    stem = stem or f"capture {len(used) + 1}"
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem} ({n})"
    return f"{name}.jpg"


def rows(ranked, names: dict) -> list[dict]:
    """RankedPhoto results, best first, as the API's rows: rank (None for a photo that could not
    be scored), name, probability (4 decimals, None on failure) and error (why it failed)."""
    table, rank = [], 0
    for r in ranked:
        scored = r.probability is not None
        rank += scored
        table.append({"rank": rank if scored else None, "name": names[r.source],
                      "probability": round(r.probability, 4) if scored else None,
                      "error": r.error})
    return table


def reason(row: dict, threshold: float) -> str:
    """Why the row stands where it does, in words."""
    if row["probability"] is None:
        return f"not scored: {row['error'] or 'unknown error'}"
    return "same expression" if row["probability"] >= threshold else "different expression"


def score_text(row: dict) -> str:
    return "—" if row["probability"] is None else f"{row['probability']:.0%}"


def to_csv(table: list[dict], threshold: float) -> str:
    """The ranking as CSV text (rank, name, P(same expression) as a number, reason)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in table:
        writer.writerow([row["rank"] if row["rank"] is not None else "",
                         safe_cell(row["name"]),
                         "" if row["probability"] is None else f"{row['probability']:.4f}",
                         safe_cell(reason(row, threshold))])
    return out.getvalue()


def safe_cell(text) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading '."""
    return spreadsheet_safe(str(text))
