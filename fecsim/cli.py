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
import json
import os
import sys
from pathlib import Path

import torch

from . import flags
from .errors import FecsimError
from .inference import ExpressionComparer
from .csv_scoring import PAIR_IMAGES, TRIPLET_IMAGES, score_csv


def check_out(path: Path) -> None:
    """FecsimError now, before any scoring, when `path` cannot be written as a CSV."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        reason = "is a folder: name a CSV file to write"
    elif not folder.is_dir():
        reason = f"its folder {folder} does not exist"
    elif not os.access(folder, os.W_OK):
        reason = f"its folder {folder} cannot be written to"
    else:
        return
    raise FecsimError(source=f"--out {path}", reason=reason)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (refused at parse time otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def export_flags(flag_dir, out) -> int:
    """The app's flags as a pairs CSV; exit status 2 when the folder is missing, 1 when a bad
    record was skipped (each is named in a warning)."""
    if not Path(flag_dir).is_dir():
        print(f"{flag_dir}: no such folder", file=sys.stderr)
        return 2
    n, skipped = flags.export_flags(flag_dir, out)
    print(f"wrote {n} pairs to {out}" + (f"; skipped {skipped} bad flag record"
                                         f"{'s' * (skipped != 1)} (see the warnings above)"
                                         if skipped else ""))
    return 1 if skipped else 0


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
    common.add_argument("--appearance-only", action="store_true",
                        help="read faces by their appearance alone, without the geometry view")
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
    p = sub.add_parser("export-flags", help="the app's flags -> a pairs CSV for train.py",
                       description="Export the web app's flags as labelled pairs for "
                                   "train.py --extra_pairs.")
    p.add_argument("flag_dir", nargs="?", default="flagged",
                   help="the app's flagging folder (default: flagged)")
    p.add_argument("--out", default="pairs.csv", help="CSV to write (default: pairs.csv)")

    args = parser.parse_args(argv)
    if args.command == "export-flags":   # needs no model
        return export_flags(args.flag_dir, args.out)
    try:
        if args.command in ("score-pairs", "score-triplets"):
            check_out(args.out)
        comparer = ExpressionComparer.load(args.checkpoint, args.device,
                                           int8=False if args.float else None,
                                           geometry=not args.appearance_only)
        if args.command == "compare":
            print(json.dumps(comparer.compare(args.a, args.b, assume_cropped=args.assume_cropped)
                             .to_dict(), indent=2))
            return 0
        if args.command == "evaluate-folder":
            # The evaluation commands read labelled splits with training's data code: imported
            # only here, so that the rest of the runtime never loads fecsim.train.
            from .train.evaluate import evaluate_folder, self_pairs
            with torch.no_grad():
                result = evaluate_folder(comparer.model, comparer.view, comparer.calibration,
                                         args.root, args.pairs, args.triplets, args.seed,
                                         comparer.device, encoder=comparer.encoder)
                if args.self_pairs and "clear_majority" in result:
                    result["self_pairs"] = self_pairs(comparer, args.root, args.self_pairs, args.seed)
            print(json.dumps(dict(result, checkpoint=str(comparer.path),
                                  encoder=type(comparer.encoder).__name__), indent=2))
            return 0
        if args.command == "evaluate-photos":
            from .train.evaluate import evaluate_photos
            with torch.no_grad():
                result = evaluate_photos(comparer, args.root, args.pairs, args.triplets, args.seed)
            print(json.dumps(dict(result, checkpoint=str(comparer.path),
                                  encoder=type(comparer.encoder).__name__), indent=2))
            return 0
        if args.command == "robustness":
            from .train.robustness import evaluate_robustness
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
