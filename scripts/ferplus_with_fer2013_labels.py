"""FER+'s training votes with each face's FER2013 label counted as a few more raters.

    python -m scripts.ferplus_with_fer2013_labels ../shared/datasets/ferplus \
        ../shared/datasets/fer2013 runs/ferplus-fer2013 [--votes 4]

FER+'s raters moved many subtle negative faces to neutral: of the training faces FER2013's labeller
called sad, 2,560 have a neutral FER+ majority and 1,973 a sad one. Posed sets and users' photos
call such faces by the expression they show, so the model learnt to read them as neutral. Counting
the original label as --votes more raters keeps FER+'s graded votes and leans those faces back.

FER2013's file names do not carry FER+'s row numbers, so each face is matched by its pixels (the
most correlated 16x16 thumbnail; every FER+ face has a match above 0.998). Writes
<out>/train/labels.csv (same columns, counts summing to 10 + votes) beside links to FER+'s images,
and links val/ and test/ unchanged: choice and test stay on FER+'s own votes. Faces FER+ drops
(most raters said "unknown" or "not a face") stay dropped.
"""
import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fecsim.model import SAME_EXPRESSION
from fecsim.train.data import VOTE_CLASSES, VOTE_DISCARD

MIN_MATCH = 0.99   # correlation of the thumbnails: the same face, re-encoded as JPEG


def thumbnails(paths) -> torch.Tensor:
    """Each image as a 16x16 grey thumbnail, centred and of unit length (correlation by dot)."""
    rows = np.stack([np.asarray(Image.open(p).convert("L").resize((16, 16), Image.BILINEAR),
                                dtype=np.float32).ravel() for p in paths])
    rows -= rows.mean(1, keepdims=True)
    return torch.from_numpy(rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-6))


def fer2013_labels(images: list[Path], fer2013_split: Path) -> list[str]:
    """The FER2013 label (as FER+ names it) of each FER+ image, found by its pixels."""
    files = sorted(fer2013_split.glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"{fer2013_split}: no <label>/*.jpg images")
    theirs = thumbnails(files)
    labels = []
    for start in range(0, len(images), 2048):
        best, index = (thumbnails(images[start:start + 2048]) @ theirs.T).max(1)
        if best.min() < MIN_MATCH:
            bad = images[start + int(best.argmin())]
            raise SystemExit(f"{bad}: no FER2013 face matches it (best {best.min():.3f}); are both "
                             "folders the same split?")
        labels += [SAME_EXPRESSION.get(files[i].parent.name, files[i].parent.name) for i in index]
    return labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ferplus", type=Path)
    parser.add_argument("fer2013", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--votes", type=int, default=4, help="raters the FER2013 label counts as")
    args = parser.parse_args()
    source, out = args.ferplus / "train", args.out / "train"
    with open(source / "labels.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    columns = ["image", *VOTE_CLASSES, *VOTE_DISCARD]
    labels = fer2013_labels([source / r["image"] for r in rows], args.fer2013 / "train")
    out.mkdir(parents=True, exist_ok=True)
    added = 0
    for row, label in zip(rows, labels):
        expression_votes = sum(int(row[c]) for c in VOTE_CLASSES)
        if label in VOTE_CLASSES and expression_votes > sum(int(row[c]) for c in VOTE_DISCARD):
            row[label] = str(int(row[label]) + args.votes)
            added += 1
        link = out / row["image"]
        if not link.exists():
            link.symlink_to((source / row["image"]).resolve())
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for split in ("val", "test"):
        if (args.ferplus / split).is_dir() and not (args.out / split).exists():
            (args.out / split).symlink_to((args.ferplus / split).resolve())
    print(f"{out / 'labels.csv'}: {len(rows)} faces, {added} with their FER2013 label as "
          f"{args.votes} more votes")


if __name__ == "__main__":
    main()
