"""Scoring a CSV of pairs or triplets of photos (the CLI's score-pairs and score-triplets): each
photo's face detected once, features in batches, every scorable row at once. A bad row gets its
error in the output and the rest go on."""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .errors import FecsimError
from .faces import parse_box
from .files import atomic_path
from .inference import ExpressionComparer
from .scoring import is_same

PAIR_IMAGES, TRIPLET_IMAGES = ("a", "b"), ("a", "b", "c")


def score_csv(comparer: ExpressionComparer, in_path: Path, out_path: Path, columns: tuple,
              assume_cropped: bool = False, batch_size: int = 64) -> tuple[int, int]:
    """Score every row; returns (rows, failed rows)."""
    data = in_path.read_bytes()
    try:   # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FecsimError(source=str(in_path), reason=f"line {line} is not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = list(reader.fieldnames or [])
    rows, shape_errors = [], []
    for row in reader:
        # DictReader files extra fields under None and fills missing ones with None.
        count = len(fields) + len(row.pop(None, [])) - sum(v is None for v in row.values())
        shape_errors.append(f"line {reader.line_num}: {count} field{'s' * (count != 1)}, the "
                            f"header has {len(fields)}" if count != len(fields) else "")
        rows.append({k: v or "" for k, v in row.items()})
    missing = [c for c in columns if c not in fields]
    if missing:
        raise FecsimError(source=str(in_path), reason=f"missing column(s) {', '.join(missing)}; found {fields}")

    def key(row, col):
        path = Path(row[col])
        return str(path if path.is_absolute() else in_path.parent / path), row.get(f"box_{col}") or ""

    def find(k):
        try:
            return comparer.face(k[0], parse_box(k[1], f"{k[0]} box"), assume_cropped=assume_cropped)
        except FecsimError as exc:
            return exc

    keys = [[] if bad else [key(row, col) for col in columns] for row, bad in zip(rows, shape_errors)]
    distinct = list(dict.fromkeys(k for row_keys in keys for k in row_keys))  # each detected once
    found = dict(zip(distinct, tqdm(comparer.detect_pool.map(find, distinct), total=len(distinct),
                                    desc="faces", file=sys.stderr, mininterval=2)))
    good = [k for k in distinct if not isinstance(found[k], FecsimError)]
    z = {}
    for start in tqdm(range(0, len(good), batch_size), desc="embed", file=sys.stderr, mininterval=2):
        chunk = good[start:start + batch_size]
        z.update(zip(chunk, comparer.features([found[k] for k in chunk])))

    scored = [row_keys for row_keys in keys if row_keys and all(k in z for k in row_keys)]
    results = []
    if scored:   # every scorable row at once
        zs = [torch.stack([z[row_keys[i]] for row_keys in scored]) for i in range(len(columns))]
        if len(columns) == 2:
            results = [{"probability": f"{p:.4f}", "same": int(is_same(p, comparer.threshold))}
                       for p in comparer.pair_probabilities(*zs)]
        else:
            p, odd = comparer.triplet_probabilities(*zs)
            results = [{"odd": int(o), "p12": f"{a:.4f}", "p13": f"{b:.4f}", "p23": f"{c:.4f}"}
                       for o, (a, b, c) in zip(odd, p)]
    results = iter(results)

    out_fields = fields + (["probability", "same"] if len(columns) == 2 else ["odd", "p12", "p13", "p23"]) + ["error"]
    failed = 0
    with atomic_path(out_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=out_fields)
        writer.writeheader()
        for row, row_keys, bad in zip(rows, keys, shape_errors):
            problems = [bad] if bad else [f"{col}: {found[k]}" for col, k in zip(columns, row_keys)
                                          if k not in z]
            out = dict(row, error="; ".join(problems))
            if problems:
                failed += 1
            else:
                out.update(next(results))
            writer.writerow(out)
    return len(rows), failed
