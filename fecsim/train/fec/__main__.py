"""python -m fecsim.train.fec download CSV [CSV ...] --out DIR
   python -m fecsim.train.fec evaluate TEST_CSV --images DIR --checkpoint P"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...errors import FecsimError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fecsim.train.fec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("download", help="fetch FEC photos and cache their face crops")
    d.add_argument("csv", nargs="+", help="FEC CSV file(s): train and/or test")
    d.add_argument("--out", required=True, help="output folder (rerun with it to resume)")
    d.add_argument("--size", type=int, default=224, help="side of the cached square crops")
    d.add_argument("--margin", type=float, default=0.1, help="box widened by this share per side")
    d.add_argument("--workers", type=int, default=32, help="parallel downloads")
    d.add_argument("--timeout", type=float, default=10.0,
                   help="seconds an attempt may take in all (connect and whole body)")
    d.add_argument("--retries", type=int, default=3)
    d.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry")
    d.add_argument("--skip-failed", action="store_true",
                   help="do not retry URLs whose last attempt was dead or not an image")
    d.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="triplet prediction accuracy on an FEC CSV")
    e.add_argument("csv", help="FEC test CSV")
    e.add_argument("--images", required=True, help="the download folder")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--device", default=None)
    e.add_argument("--min-agreement", type=int, default=0,
                   help="only triplets whose majority has at least this many raters")
    e.add_argument("--workers", type=int, default=2, help="image loading processes")
    e.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            from .download import Options, download
            options = Options(size=args.size, margin=args.margin, workers=args.workers,
                              timeout=args.timeout, retries=args.retries, backoff=args.backoff,
                              skip_failed=args.skip_failed)
            download(args.csv, args.out, options, progress=not args.quiet)
        else:
            result = evaluate(args)
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2))
    except FecsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def evaluate(args) -> dict:
    from ... import checkpoint
    from ...view import pick_device
    from .datasets import CropCache
    from .evaluate import format_report, score_file

    device = pick_device(args.device)
    model, meta = checkpoint.load(args.checkpoint, device)
    result = score_file(model, meta.view, args.csv, CropCache(args.images), device,
                        meta.calibration, args.min_agreement, args.workers)
    result["checkpoint"], result["csv"] = str(args.checkpoint), str(args.csv)
    print(format_report(result))
    return result


if __name__ == "__main__":
    sys.exit(main())
