"""FEC's CSV format: no header, one triplet per row, malformed rows skipped and counted.

Columns 0-4: URL of image 1 and its face box as fractions in FEC's order
(top-left column / width, bottom-right column / width, top-left row / height, bottom-right row / height);
columns 5-9 and 10-14: images 2 and 3; column 15: the triplet type; then (rater id, answer) pairs,
six in the public files, where an answer 1, 2 or 3 names the image whose expression is the odd one out.
"""
from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field

TRIPLET_TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")
RATINGS_START = 16
# FECNet's margins: a one-class triplet (all three faces share a coarse emotion) asks for a finer
# distinction, so it is given a smaller margin.
MARGINS = {"ONE_CLASS_TRIPLET": 0.1, "TWO_CLASS_TRIPLET": 0.2, "THREE_CLASS_TRIPLET": 0.2}


@dataclass(frozen=True, slots=True)
class FaceRef:
    url: str
    box: tuple          # FEC's order: (x0 / width, x1 / width, y0 / height, y1 / height)


def majority(answers) -> tuple[int | None, int]:
    """The most common answer and how many raters gave it; the answer is None on a tie for the top."""
    counts = Counter(answers).most_common()
    if not counts:
        return None, 0
    top = counts[0][1]
    if len(counts) > 1 and counts[1][1] == top:
        return None, top
    return counts[0][0], top


@dataclass(frozen=True, slots=True)
class Triplet:
    faces: tuple        # three FaceRef
    kind: str           # one of TRIPLET_TYPES
    ratings: tuple      # ((rater id, answer), ...), answer 1, 2 or 3 = the odd one out
    line: int           # line number in its file, for messages

    @property
    def answers(self) -> list[int]:
        return [answer for _, answer in self.ratings]

    @property
    def majority(self) -> int | None:
        return majority(self.answers)[0]

    @property
    def agreement(self) -> int:
        """How many raters gave the most common answer."""
        return majority(self.answers)[1]

    @property
    def margin(self) -> float:
        return MARGINS[self.kind]


class MalformedRow(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class ReadReport:
    path: str = ""
    rows: int = 0                                          # non-blank lines
    triplets: int = 0
    malformed: Counter = field(default_factory=Counter)    # reason -> rows
    examples: list = field(default_factory=list)           # first few (line, message)

    @property
    def skipped(self) -> int:
        return sum(self.malformed.values())

    def summary(self) -> str:
        text = f"{self.path}: {self.triplets} triplets from {self.rows} rows"
        if self.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in self.malformed.most_common())
            text += f"; {self.skipped} malformed rows skipped ({reasons})"
        return text


def parse_row(fields: list[str], line: int = 0, _faces: dict | None = None) -> Triplet:
    """One CSV row -> Triplet; MalformedRow says why a row cannot be one."""
    if len(fields) < RATINGS_START + 2 or (len(fields) - RATINGS_START) % 2:
        raise MalformedRow("columns", f"{len(fields)} columns, expected 16 + (rater, answer) pairs")
    faces = []
    for start in (0, 5, 10):
        url = fields[start].strip()
        if not url.lower().startswith(("http://", "https://")):
            raise MalformedRow("url", repr(url[:80]))
        try:
            box = tuple(float(v) for v in fields[start + 1:start + 5])
        except ValueError:
            raise MalformedRow("box", repr(fields[start + 1:start + 5])) from None
        if not all(math.isfinite(v) for v in box):
            raise MalformedRow("box", repr(box))
        face = FaceRef(url, box)
        # Share one object per face: the train file names each face in many triplets.
        faces.append(_faces.setdefault(face, face) if _faces is not None else face)
    kind = fields[15].strip()
    if kind not in TRIPLET_TYPES:
        raise MalformedRow("type", repr(kind[:40]))
    ratings = []
    for i in range(RATINGS_START, len(fields), 2):
        rater, answer = fields[i].strip(), fields[i + 1].strip()
        if answer not in ("1", "2", "3"):
            raise MalformedRow("answer", repr(answer[:20]))
        ratings.append((rater, int(answer)))
    return Triplet(tuple(faces), kind, tuple(ratings), line)


def read_triplets(path) -> tuple[list[Triplet], ReadReport]:
    """Every well-formed triplet of an FEC CSV, and a report of what was skipped and why."""
    report, triplets, faces = ReadReport(path=str(path)), [], {}
    # Line by line rather than one csv.reader over the file: a stray quote then spoils one row,
    # not every row up to the next quote.
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                fields = next(csv.reader([line]))
                triplets.append(parse_row(fields, number, faces))
            except MalformedRow as exc:
                _skip(report, number, exc.reason, str(exc))
            except (csv.Error, StopIteration) as exc:
                _skip(report, number, "csv", str(exc))
    report.triplets = len(triplets)
    return triplets, report


def _skip(report: ReadReport, line: int, reason: str, message: str) -> None:
    report.malformed[reason] += 1
    if len(report.examples) < 10:
        report.examples.append((line, message))
