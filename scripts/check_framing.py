"""How tightly are a labelled dataset's faces framed, as MTCNN sees them?

    python -m scripts.check_framing ../shared/datasets/fer2013/val [--n 300]

Runs the detector on a sample of the dataset's face crops (upscaled so MTCNN can work) and prints
the detected box's side as a share of the frame and its centre. The shipped model's face margin
comes from this: a detected face from a photo is cropped so that its box fills the crop as it
fills the training images (margin = (1 / side - 1) / 2 per side).
"""
import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image

from fecsim.faces import FaceCropper


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = sorted(p for p in args.root.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.Random(args.seed).shuffle(files)
    detector, side, cx, cy = FaceCropper(), [], [], []
    size = 192
    for path in files[: args.n]:
        found = detector.detect(Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC))
        if found:
            x0, y0, x1, y1 = (v / size for v in found[0].box)
            side.append(max(x1 - x0, y1 - y0))
            cx.append((x0 + x1) / 2)
            cy.append((y0 + y1) / 2)
    s = np.median(side)
    print(f"faces found in {len(side)} of {min(args.n, len(files))} images")
    print(f"box side / frame: median {s:.3f} (quartiles {np.percentile(side, 25):.3f}-"
          f"{np.percentile(side, 75):.3f}); box centre x {np.median(cx):.3f}, y {np.median(cy):.3f}")
    print(f"matching margin per side: {(1 / s - 1) / 2:+.3f}")


if __name__ == "__main__":
    main()
