"""Core speed figures on this machine (prints them; asserts nothing).

    python benchmarks/bench_core.py [--checkpoint P] [--device cpu] [--repeats 30] [--float]

- pair latency p50/p90: two 640 px photos, face detection included (ExpressionComparer.compare);
- faces embedded per second at batch 64 (crops already made);
- ranking 30 different 640 px photos against a reference, detection included (the /rank endpoint);
- training images per second (one labelled batch of 128: forward, in-batch pair loss, backward).
Targets on 2 CPU cores: pair p50 <= 70 ms, >= 200 faces/s, 30 photos ranked in < 5 s.
"""
import argparse
import time

import numpy as np
import torch
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.train.loop import batch_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--float", action="store_true", help="the float model, not the int8 encoder")
    args = parser.parse_args()
    from skimage import data
    comparer = ExpressionComparer.load(args.checkpoint, args.device, int8=False if args.float else None)
    a = Image.fromarray(data.astronaut()).resize((640, 640))
    b = a.transpose(Image.FLIP_LEFT_RIGHT).rotate(5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {comparer.device}, "
          f"input {comparer.view.input_size} px, flip_average {comparer.view.flip_average}, "
          f"encoder {type(comparer.encoder).__name__}")

    for _ in range(3):
        comparer.compare(a, b)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        comparer.compare(a, b)
        times.append((time.perf_counter() - start) * 1000)
    print(f"pair latency, two 640 px photos, detection included: "
          f"p50 {np.percentile(times, 50):.0f} ms, p90 {np.percentile(times, 90):.0f} ms "
          f"({args.repeats} pairs)")

    # 30 distinct photos (so nothing is cached): the astronaut rotated, shifted and rescaled.
    photos = [a.rotate(angle, translate=(3 * angle, -2 * angle)).resize((640 - 4 * i, 640 - 4 * i))
              for i, angle in enumerate(range(-15, 15))]
    comparer.rank(b, photos[:2])
    start = time.perf_counter()
    ranked = comparer.rank(b, photos)
    print(f"ranking 30 photos against a reference, detection included: "
          f"{time.perf_counter() - start:.2f} s ({sum(r.error is None for r in ranked)} with a face)")

    crop = comparer.face(a).crop
    crops = [crop] * 64
    comparer.embed(crops)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 5:
        comparer.embed(crops)
        n += 64
    print(f"faces embedded per second at batch 64: {n / (time.perf_counter() - start):.0f}")

    model = comparer.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size = comparer.view.input_size
    batch = {"images": torch.rand(128, 3, size, size), "labels": torch.randint(0, 7, (128,))}
    steps = []
    for _ in range(4):
        start = time.perf_counter()
        loss, _ = batch_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(time.perf_counter() - start)
    print(f"training images per second (batch 128, {size} px): {128 / np.median(steps[1:]):.0f}")


if __name__ == "__main__":
    main()
