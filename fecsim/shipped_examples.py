"""The example photos under examples/: pairs and triplets with what to expect of each.

examples/pairs.csv (columns a, b, expect, note) and examples/triplets.csv (a, b, c, odd, note)
name photos in examples/photos/ by paths relative to the CSV, the way `python -m fecsim
score-pairs` and `score-triplets` read them, so the same files drive the page and the command line.
`expect` is "same", "different" or "hard"; `note` says in plain words what the pair shows.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .files import shipped

ROOT = shipped("examples")
EXPECT = {"same": "Clearly the same", "different": "Clearly different",
          "hard": "A hard one"}


@dataclass(frozen=True)
class Example:
    photos: tuple[str, ...]   # absolute paths
    expect: str               # "same", "different", "hard"; for a triplet, the odd one's number
    note: str

    @property
    def caption(self) -> str:
        """What the page shows under the example, e.g. "Clearly the same: both happy"."""
        if self.expect in EXPECT:
            return f"{EXPECT[self.expect]}: {self.note}"
        return f"Expect face {self.expect}: {self.note}"   # a triplet's odd one


def pairs(root: Path = ROOT) -> list[Example]:
    return _read(root / "pairs.csv", ("a", "b"), "expect")


def triplets(root: Path = ROOT) -> list[Example]:
    return _read(root / "triplets.csv", ("a", "b", "c"), "odd")


def photos(root: Path = ROOT) -> list[str]:
    """Every distinct photo the examples use, in first-use order (reference faces to pick from)."""
    every = [p for example in (*pairs(root), *triplets(root)) for p in example.photos]
    return list(dict.fromkeys(every))


def _read(path: Path, columns: tuple, expect_column: str) -> list[Example]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as file:
        return [Example(tuple(str((path.parent / row[c]).resolve()) for c in columns),
                        row[expect_column], row["note"]) for row in csv.DictReader(file)]
