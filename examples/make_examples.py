"""Choose the example photos from wild-dev (see README.md here) and write examples/.

    .venv/bin/python examples/make_examples.py [WILD_DEV]     # default ../shared/datasets/wild-dev

Every photo of the folder goes through the app's own path (detection, crop, the shipped model's
classifier). Kept as candidates: one face found, at least MIN_FACE px wide, and the model's most
likely expression is the folder's label. For each role below the most confident candidate whose
person is not used yet is taken, so every photo shows a different person. The pairs and
triplets are then compared with ExpressionComparer.compare / odd_one_out, and the script stops
unless each photo is still read as its label and each clear pair comes out as promised: a clear
"same" pair at P >= 0.8, a clear "different" one at P <= 0.1 (both far from any threshold, so a
retrained model should keep them). It prints the figures for examples/README.md.
"""
import csv
import shutil
import sys
from pathlib import Path

from fecsim import ExpressionComparer
from fecsim.errors import FecsimError
from fecsim.train.evaluate import person_of

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "datasets" / "wild-dev"
LABELS = {"happy": "happiness", "surprise": "surprise", "sad": "sadness", "angry": "anger",
          "neutral": "neutral", "disgust": "disgust"}   # wild-dev folder -> the model's name
MIN_FACE = 200          # px: a large face, clear on a projector
ROLES = ["happy", "happy", "happy", "surprise", "surprise", "sad", "sad", "angry", "neutral",
         "disgust"]     # h1 h2 h3 s1 s2 d1 d2 a1 n1 g1, in this order
PAIRS = [  # (a, b, expect, note)
    ("happy1", "happy2", "same", "two people, both happy"),
    ("happy3", "angry1", "different", "happy and angry"),
    ("surprise1", "surprise2", "same", "two people, both surprised"),
    ("surprise2", "sad1", "different", "surprised and sad"),
    ("sad1", "neutral1", "hard", "sad, or just neutral?"),
    ("disgust1", "angry1", "hard", "disgust and anger are often confused"),
]
TRIPLETS = [  # (a, b, c, odd, note)
    ("happy1", "happy2", "angry1", "3", "one angry face among two happy ones"),
    ("surprise1", "neutral1", "surprise2", "2", "one neutral face between two surprised ones"),
    ("happy3", "sad1", "sad2", "1", "one happy face and two sad ones"),
]


def score(comparer, source: Path) -> list[tuple]:
    """(confidence, folder, path) of every candidate photo, most confident first."""
    found = []
    for path in sorted(source.glob("*/*.jpg")):
        folder = path.parent.name
        try:
            face = comparer.face(str(path))
        except FecsimError:
            continue
        expressions = comparer.expressions(comparer.features([face]))[0]
        top = next(iter(expressions))
        if (folder in LABELS and top == LABELS[folder] and len(face.found) == 1
                and face.box[2] - face.box[0] >= MIN_FACE):
            found.append((expressions[top], folder, path))
    return sorted(found, key=lambda c: -c[0])


def choose(candidates) -> dict:
    """role name ("happy1", ...) -> source path, each a different person."""
    chosen, people, count = {}, set(), {}
    for role in ROLES:
        count[role] = count.get(role, 0) + 1
        path = next(p for _, folder, p in candidates if folder == role and person_of(p) not in people)
        people.add(person_of(path))
        chosen[f"{role}{count[role]}"] = path
    return chosen


def check(comparer, chosen: dict) -> list[str]:
    """Compare every pair and triplet through the app's path; the README's figures."""
    lines = []
    for a, b, expect, note in PAIRS:
        result = comparer.compare(str(chosen[a]), str(chosen[b]))
        tops = [next(iter(e)) for e in result.expressions]
        assert tops == [LABELS[a[:-1]], LABELS[b[:-1]]], (a, b, tops)
        assert expect != "same" or result.probability >= 0.8, (a, b, result.probability)
        assert expect != "different" or result.probability <= 0.1, (a, b, result.probability)
        lines.append(f"| {chosen[a].name} | {chosen[b].name} | {expect}: {note} | "
                     f"{tops[0]}, {tops[1]} | {result.probability:.2f} |")
    for a, b, c, odd, note in TRIPLETS:
        result = comparer.odd_one_out(*(str(chosen[k]) for k in (a, b, c)))
        assert str(result.odd) == odd, (a, b, c, result.odd)
        lines.append(f"| {chosen[a].name}, {chosen[b].name}, {chosen[c].name} | odd: {odd} | "
                     f"{note} | {result.odd} |")
    return lines


def write(chosen: dict) -> None:
    photos = HERE / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir()
    names = {}
    for role, path in chosen.items():
        names[role] = f"photos/{role[:-1]}-{path.name}"
        shutil.copyfile(path, HERE / names[role])   # the file as published: not re-encoded
    with open(HERE / "pairs.csv", "w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["a", "b", "expect", "note"])
        out.writerows([names[a], names[b], expect, note] for a, b, expect, note in PAIRS)
    with open(HERE / "triplets.csv", "w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["a", "b", "c", "odd", "note"])
        out.writerows([names[a], names[b], names[c], odd, note] for a, b, c, odd, note in TRIPLETS)


def main(source: Path) -> None:
    comparer = ExpressionComparer.load(device="cpu")
    chosen = choose(score(comparer, source))
    lines = check(comparer, chosen)
    write(chosen)
    print("\n".join(f"{role}: {path.relative_to(source)}" for role, path in chosen.items()))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
