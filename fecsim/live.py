"""Live mirror mode: the face in each webcam frame, found fast enough for several a second.

In each frame the face is first looked for near where it was in the last one (a small region, downscaled, so MTCNN searches a few thousand pixels instead of the
whole frame); only when it is lost is the whole frame searched, on a downscaled copy. The crop
itself is always cut from the full-resolution frame, framed as the model was trained.
"""
from __future__ import annotations

from PIL import Image

from .inference import ExpressionComparer

TRACK_MARGIN = 0.8        # the region searched: the last box widened by this share of its size
TRACK_SIDE = 160          # ... downscaled to at most this many pixels (the face then ~70 px)
SEARCH_SIDE = 320         # a lost face is searched for in the whole frame at this size


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
