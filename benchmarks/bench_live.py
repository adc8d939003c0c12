"""Live mirror mode: scored frames per second, driving the very function the webcam stream calls.

    python benchmarks/bench_live.py [--checkpoint P] [--frames 120]

Frames are 640x480, the astronaut photo (public domain, shipped in scikit-image) moved and
scaled a little from frame to frame, as a face in front of a webcam moves; the reference is the
mirrored photo, embedded once. Prints frames/s, per-frame p50/p90 and how many frames found the
face. Target on 2 CPU cores: at least 8 frames/s.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
from fecsim import ExpressionComparer
from fecsim.web.context import AppContext
from fecsim.web.live_mirror import live_frame, set_reference


def moving_face_frames(n: int, size=(640, 480)) -> list[np.ndarray]:
    """n webcam-sized frames of the astronaut's face drifting across and nearer/further away."""
    from skimage import data
    photo = Image.fromarray(data.astronaut())
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        scale = 0.75 + 0.25 * np.sin(2 * np.pi * t)            # 0.5x .. 1.0x of 512 px
        face = photo.resize((round(512 * scale), round(512 * scale)))
        canvas = Image.new("RGB", size, (90, 90, 90))
        x = round((size[0] - face.width) * (0.5 + 0.5 * np.sin(4 * np.pi * t)))
        y = round((size[1] - face.height) * 0.5 + 20 * np.cos(4 * np.pi * t))
        canvas.paste(face, (x, y))
        frames.append(np.asarray(canvas))
    return frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args(argv)
    ctx = AppContext(ExpressionComparer.load(args.checkpoint, device="cpu"), tempfile.mkdtemp())
    from skimage import data
    reference = Path(tempfile.mkdtemp()) / "reference.jpg"
    Image.fromarray(data.astronaut()).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(reference)
    _, state, history, best = set_reference(ctx, str(reference))
    frames = moving_face_frames(args.frames)
    track = None
    for frame in frames[:5]:                                  # warm-up: MTCNN, the encoder
        _, track, _, _, _ = live_frame(ctx, frame, state, track, [], None)
    track, times, found = None, [], 0
    start = time.perf_counter()
    for frame in frames:
        t0 = time.perf_counter()
        _, track, history, best, _ = live_frame(ctx, frame, state, track, history, best)
        times.append(time.perf_counter() - t0)
        found += history[-1] is not None
    wall = time.perf_counter() - start
    print(json.dumps({
        "frames": len(frames), "frame_size": "640x480", "faces_found": found,
        "frames_per_s": round(len(frames) / wall, 1),
        "frame_p50_ms": round(1000 * float(np.percentile(times, 50)), 1),
        "frame_p90_ms": round(1000 * float(np.percentile(times, 90)), 1),
        "best": round(best, 4) if best is not None else None, "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
