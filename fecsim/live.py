"""Live mirror mode: webcam frames scored against one reference face, several times a second.

The reference is embedded once. In each frame the face is first looked for near where it was in
the last one (a small region, downscaled, so MTCNN searches a few thousand pixels instead of the
whole frame); only when it is lost is the whole frame searched, on a downscaled copy. The crop
itself is always cut from the full-resolution frame, framed as the model was trained.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .inference import ExpressionComparer

TRACK_MARGIN = 0.8        # the region searched: the last box widened by this share of its size
TRACK_SIDE = 160          # ... downscaled to at most this many pixels (the face then ~70 px)
SEARCH_SIDE = 320         # a lost face is searched for in the whole frame at this size


@dataclass
class FrameScore:
    probability: float | None   # calibrated P(same expression as the reference); None: no face
    box: tuple | None           # where the face is in this frame (the next frame's search region)
    seconds: float


def find_face(comparer: ExpressionComparer, image: Image.Image, near=None):
    """The largest face in the image as (box, eyes) (faces.Detection's), looked for near the
    box `near` first; None when there is none."""
    if near is not None:
        x0, y0, x1, y1 = near
        dx, dy = (x1 - x0) * TRACK_MARGIN, (y1 - y0) * TRACK_MARGIN
        region = (max(0, round(x0 - dx)), max(0, round(y0 - dy)),
                  min(image.width, round(x1 + dx)), min(image.height, round(y1 + dy)))
        found = _detect_scaled(comparer, image.crop(region), TRACK_SIDE)
        if found is not None:   # box and eyes alike alternate x and y: shift both into the frame
            box, eyes = (tuple(v + region[i % 2] for i, v in enumerate(xy)) for xy in found)
            return box, eyes
    return _detect_scaled(comparer, image, SEARCH_SIDE)


def _detect_scaled(comparer, image: Image.Image, side: int):
    scale = min(1.0, side / max(image.size))
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.BILINEAR) if scale < 1 else image
    found = comparer.cropper.detect(small)
    if not found:
        return None
    return tuple(v / scale for v in found[0].box), tuple(v / scale for v in found[0].eyes)


@torch.no_grad()
def score_frame(comparer: ExpressionComparer, reference_z: torch.Tensor, frame,
                near=None) -> FrameScore:
    """P(same expression) of the face in one frame (RGB array or PIL) and the reference's z."""
    start = time.perf_counter()
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame))
    image = image.convert("RGB")
    # On the comparer's detection threads: one torch thread each, which for MTCNN's many small
    # ops is far faster than the caller's threads fighting over the cores.
    found = comparer.detect_pool.submit(find_face, comparer, image, near).result()
    if found is None:
        return FrameScore(None, None, time.perf_counter() - start)
    box, eyes = found
    z = comparer.features([comparer.cropper.crop(image, box, eyes)])
    p = float(comparer.pair_probabilities(reference_z, z)[0])
    return FrameScore(p, tuple(round(v, 1) for v in box), time.perf_counter() - start)
