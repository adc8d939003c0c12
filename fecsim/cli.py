"""Command line: score CSVs of pairs or triplets, compare two photos, evaluate on a labelled split.

    python -m fecsim score-pairs PAIRS.csv --out OUT.csv       # columns a,b[,box_a,box_b]
    python -m fecsim score-triplets TRIPLETS.csv --out OUT.csv # columns a,b,c[,box_a,box_b,box_c]
    python -m fecsim compare A.jpg B.jpg                       # JSON on stdout
    python -m fecsim evaluate-folder fer2013/test              # the model card's test numbers
    python -m fecsim export-flags flagged/ --out pairs.csv     # the app's flags -> training pairs

On the CPU, features come from the checkpoint's int8 encoder where it has one (--float: from the
float model). Boxes are pixels "x0 y0 x1 y1". A bad row gets its error and the batch goes on; the exit status
is 1 when any row failed. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import flags
from .errors import FecsimError
from .faces import parse_box
from .files import atomic_path
from .inference import ExpressionComparer
from .view import odd_one_out

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
            results = [{"probability": f"{p:.4f}", "same": int(p >= comparer.threshold)}
                       for p in comparer.pair_probabilities(*zs)]
        else:
            za, zb, zc = zs
            p12, p13, p23 = (comparer.pair_probabilities(x, y) for x, y in ((za, zb), (za, zc), (zb, zc)))
            odd = odd_one_out(np.stack([p12, p13, p23], 1))
            results = [{"odd": int(o), "p12": f"{a:.4f}", "p13": f"{b:.4f}", "p23": f"{c:.4f}"}
                       for o, a, b, c in zip(odd, p12, p13, p23)]
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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (refused at parse time otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fecsim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", help="safetensors checkpoint (default: the shipped model)")
    common.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    common.add_argument("--assume-cropped", action="store_true",
                        help="images are face crops already: skip detection")
    common.add_argument("--float", action="store_true",
                        help="run the float model on the CPU too, not the checkpoint's int8 encoder")
    for name, help_ in (("score-pairs", "score a CSV of pairs (a,b)"),
                        ("score-triplets", "odd one out for a CSV of triplets (a,b,c)")):
        p = sub.add_parser(name, parents=[common], help=help_)
        p.add_argument("csv", type=Path)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--batch-size", type=positive_int, default=64)
    p = sub.add_parser("compare", parents=[common], help="compare two photos, print JSON")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("evaluate-folder", parents=[common],
                       help="pair AUC/accuracy, ECE and triplet accuracy on a labelled split")
    p.add_argument("root", type=Path, help="<root>/<label>/<images> (e.g. fer2013/test), or "
                   "images beside labels.csv of votes (ferplus/test)")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--triplets", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--self-pairs", type=int, default=25, metavar="N",
                   help="vote-labelled splits: P(same) of N clear faces per expression against "
                   "themselves and their mirror images (0: skip)")
    p = sub.add_parser("evaluate-photos", parents=[common],
                       help="pair and triplet figures on photos in <root>/<label>/, through "
                       "detection, across different people; per-expression triplets, confusion")
    p.add_argument("root", type=Path, help="e.g. wild-dev: <root>/<label>/<person>_<n>.jpg")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--triplets", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("robustness", parents=[common],
                       help="pair and triplet figures under detection, framing, JPEG, blur, light")
    p.add_argument("root", type=Path, help="a split, e.g. ferplus/val")
    p.add_argument("--faces", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--triplets", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    flags.add_arguments(sub.add_parser("export-flags", description=flags.DESCRIPTION,
                                       help="the app's flags -> a pairs CSV for train.py"))

    args = parser.parse_args(argv)
    if args.command == "export-flags":   # needs no model
        return flags.run(args)
    try:
        comparer = ExpressionComparer.load(args.checkpoint, args.device,
                                           int8=False if args.float else None)
        if args.command == "compare":
            print(json.dumps(comparer.compare(args.a, args.b, assume_cropped=args.assume_cropped)
                             .to_dict(), indent=2))
            return 0
        if args.command == "evaluate-folder":
            from .evaluate import evaluate_folder
            with torch.no_grad():
                result = evaluate_folder(comparer.model, comparer.view, comparer.calibration,
                                         args.root, args.pairs, args.triplets, args.seed,
                                         comparer.device, encoder=comparer.encoder)
                if args.self_pairs and "clear_majority" in result:
                    from .evaluate import self_pairs
                    result["self_pairs"] = self_pairs(comparer, args.root, args.self_pairs, args.seed)
            print(json.dumps(dict(result, checkpoint=str(comparer.path),
                                  encoder=type(comparer.encoder).__name__), indent=2))
            return 0
        if args.command == "evaluate-photos":
            from .evaluate import evaluate_photos
            with torch.no_grad():
                result = evaluate_photos(comparer, args.root, args.pairs, args.triplets, args.seed)
            print(json.dumps(dict(result, checkpoint=str(comparer.path),
                                  encoder=type(comparer.encoder).__name__), indent=2))
            return 0
        if args.command == "robustness":
            from .robustness import evaluate_robustness
            result = evaluate_robustness(comparer, args.root, args.faces, args.pairs, args.triplets,
                                         args.seed)
            print(json.dumps(dict(result, checkpoint=str(comparer.path),
                                  encoder=type(comparer.encoder).__name__), indent=2))
            return 0
        columns = PAIR_IMAGES if args.command == "score-pairs" else TRIPLET_IMAGES
        rows, failed = score_csv(comparer, args.csv, args.out, columns, args.assume_cropped,
                                 args.batch_size)
    except (FecsimError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{rows} rows scored, {failed} failed -> {args.out}", file=sys.stderr)
    return 1 if failed else 0
