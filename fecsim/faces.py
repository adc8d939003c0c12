"""Faces: find them (MTCNN from facenet-pytorch) or take given boxes, and crop them the way the
model saw its training faces.

FER2013 faces are tight, square, grey 48x48 crops. A detected face from a colour photo is made
square around the detector's box, widened by a margin, turned grey and resized to 48 px before
being resized to the model's input size, so that framing, colour and sharpness match training.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from .errors import BoxError, NoFaceError
from .images import describe, load_reduced
from .text import MAX_TEXT_INPUT, quoted
from .view import View

DETECT_MAX_SIDE = 400    # MTCNN runs on a copy at most this large (its cost grows with pixels;
                         # the smallest face it looks for is still 32 px there); the crop is
                         # cut from the full-resolution photo
MIN_FACE_FRACTION = 0.08  # faces narrower than this share of the photo's longer side are skipped:
                          # in a 640 px webcam frame that is about FER2013's own 48 px, and each
                          # smaller size MTCNN searches for costs another, larger pyramid level
MIN_FACE_PROB = 0.9      # below this MTCNN's candidates are mostly not faces
REGION_SIDE = 128        # the full-resolution face kept for the geometry view (geometry.py)
MIN_FACE_SIDE = 20       # the smallest face MTCNN is asked for (its own default): a photo
                         # narrower than this cannot hold one
NO_FACE_ADVICE = ("no face found. A face is found when it is turned to the camera, well lit and "
                  f"not too small (at least {MIN_FACE_FRACTION:.0%} of the picture's longer side): "
                  "come closer to the camera, or crop the photo around the face, or give its box")


class Detection(NamedTuple):
    """A face MTCNN found, in pixels of the photo it searched."""
    x0: float
    y0: float
    x1: float
    y1: float
    probability: float
    eyes: tuple   # (left x, left y, right x, right y): the eye landmarks, left as the photo shows

    @property
    def box(self) -> tuple:
        """(x0, y0, x1, y1) in pixels."""
        return self.x0, self.y0, self.x1, self.y1

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


@dataclass
class Face:
    crop: Image.Image                  # RGB image exactly as the model sees it
    box: tuple                         # (x0, y0, x1, y1) in pixels of the upright original
    image: Image.Image | None          # the upright RGB photo, reduced to images.WORK_MAX_SIDE
                                       # (None where only the crop is kept)
    found: list = field(default_factory=list)  # every detected box, largest first ([] if given)
    region: Image.Image | None = None  # the same face in colour at full resolution, level, at
                                       # REGION_SIDE px: what the geometry view reads
    blendshapes: np.ndarray | None = None  # the geometry view's reading (geometry.py), if any
    scale: float = 1.0                 # pixels of the original per pixel of `image`

    def on_image(self, box) -> tuple:
        """A box in the original's pixels (as `box` and `found` are) in pixels of `image`."""
        return tuple(v / self.scale for v in box)

    @property
    def others(self) -> int:
        """How many more faces were found besides the one used."""
        return max(len(self.found) - 1, 0)


def _in_original(box, scale: float) -> tuple:
    return tuple(round(v * scale, 1) for v in box)


def fec_box_to_pixels(box, width: int, height: int) -> tuple:
    """FEC's box order (x0/w, x1/w, y0/h, y1/h) -> pixels (x0, y0, x1, y1)."""
    left, right, top, bottom = (float(v) for v in box)
    return (left * width, top * height, right * width, bottom * height)


def parse_box(text, name: str = "image"):
    """'x0 y0 x1 y1' in pixels (spaces or commas) -> a tuple of floats, or None when empty."""
    if text is None or not str(text).strip():
        return None
    text = str(text)
    if len(text) > MAX_TEXT_INPUT:   # refused unparsed, and not echoed whole
        raise BoxError(source=name, reason=f"a box is four numbers x0, y0, x1, y1 in pixels (got "
                       f"{len(text):,} characters)")
    parts = text.replace(",", " ").split()
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise BoxError(source=name, reason=f"a box is four numbers x0, y0, x1, y1 in pixels (got {quoted(text)})")
    return box


def parse_face_number(value, name: str = "image") -> int:
    """Which detected face to use, as the page and API take it: a whole number >= 1 (1 = the
    largest; empty means 1). BoxError otherwise: 0, -5 or 1.7 must not quietly mean face 1."""
    try:
        number = float(value if value not in (None, "") else 1)
    except (TypeError, ValueError, OverflowError):   # OverflowError: a 400-digit int
        number = math.nan
    if not (math.isfinite(number) and number >= 1 and number.is_integer()):
        raise BoxError(source=name, reason=f"the face number must be a whole number >= 1 (got {quoted(value)})")
    return int(number)


def check_box(box, width: int, height: int, name: str = "image") -> tuple:
    """Validate a pixel box and clip it to the image; BoxError if it is malformed or empty."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise BoxError(source=name, reason=f"a box is four numbers x0, y0, x1, y1 (got {box!r})") from exc
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise BoxError(source=name, reason=f"box {box!r} has non-finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise BoxError(source=name, reason=f"box {box!r} needs x1 > x0 and y1 > y0")
    clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
    if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
        raise BoxError(source=name, reason=f"box {box!r} is outside the {width}x{height} image")
    # Mostly padding, the crop would get a confident answer about nothing.
    inside = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / ((x1 - x0) * (y1 - y0))
    if inside < 0.5:
        raise BoxError(source=name, reason=f"box {box!r} lies mostly outside the {width}x{height} image "
                       f"({inside:.0%} inside)")
    return clipped


def min_face_size(size) -> int:
    """The smallest face MTCNN is asked for in a photo of this (width, height)."""
    # A face cannot be taller than an elongated photo's shorter side: search down to half of it.
    # (A smallest face larger than the shorter side leaves MTCNN no scale to search, and it
    # crashes on the empty list.)
    return max(MIN_FACE_SIDE, min(round(MIN_FACE_FRACTION * max(size)), min(size) // 2))


class FaceCropper:
    """Finds faces and crops them as a model's view frames them."""

    def __init__(self, view: View = View(), device="cpu"):
        self.view, self.device = view, device
        self.margin = view.face.margin
        self._local = threading.local()   # one MTCNN per thread: detect() sets min_face_size

    def detect(self, image: Image.Image, finer: bool = False) -> list[Detection]:
        """Faces found, largest first. finer: down to MIN_FACE_SIDE whatever the photo's size,
        the faces a group photo's back row holds (slower: the page counts them to say how many
        were too small to use)."""
        if min(image.size) < MIN_FACE_SIDE:
            return []
        mtcnn = getattr(self._local, "mtcnn", None)
        if mtcnn is None:
            from facenet_pytorch import MTCNN  # imported late: it pulls in its weights
            # Channels-last: the CPU's max-pooling over R-Net's and O-Net's candidate batches is
            # several times faster in that layout, and the boxes are the same.
            mtcnn = self._local.mtcnn = MTCNN(keep_all=True, device=self.device).to(
                memory_format=torch.channels_last)
        # Shrunk to DETECT_MAX_SIDE, but a panorama's shorter side never below MIN_FACE_SIDE.
        scale = min(1.0, max(DETECT_MAX_SIDE / max(image.size), MIN_FACE_SIDE / min(image.size)))
        small = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.BILINEAR) if scale < 1 else image
        mtcnn.min_face_size = MIN_FACE_SIDE if finer else min_face_size(small.size)
        boxes, probs, points = mtcnn.detect(small, landmarks=True)
        if boxes is None:
            return []
        # facenet-pytorch 2.5.3 may hand back object-dtype arrays: make them plain floats.
        boxes = np.asarray([np.asarray(b, dtype=np.float64) for b in boxes]) / scale
        points = np.asarray([np.asarray(p, dtype=np.float64) for p in points]) / scale
        probs = np.asarray(probs, dtype=np.float64)
        found = [Detection(*map(float, b), float(p), tuple(map(float, eyes[:2].ravel())))
                 for b, p, eyes in zip(boxes, probs, points) if p >= MIN_FACE_PROB]
        return sorted(found, key=lambda f: f.area, reverse=True)

    def __call__(self, source, box=None, fec_box=None, assume_cropped: bool = False) -> Face:
        """The face to compare: in box (pixels x0, y0, x1, y1), or fec_box (FEC's order: x0/w,
        x1/w, y0/h, y1/h), else the largest detected face; assume_cropped: the whole image."""
        name = describe(source)
        # Worked on reduced (a 50 MP photo decodes at a quarter size); boxes in and out are in
        # pixels of the original.
        image, scale = load_reduced(source)
        width, height = round(image.width * scale), round(image.height * scale)
        found = []
        if assume_cropped:
            return Face(self._finish(image), (0.0, 0.0, float(width), float(height)), image,
                        region=_region_sized(image), scale=scale)
        if fec_box is not None:
            box = fec_box_to_pixels(fec_box, width, height)
        if box is not None:
            box = tuple(v / scale for v in check_box(box, width, height, name))
        else:
            if min(image.size) < MIN_FACE_SIDE:
                raise NoFaceError(source=name, reason=f"{width}x{height} pixels is too small to "
                                  f"find a face in (faces need at least {MIN_FACE_SIDE} px)")
            found = self.detect(image)
            if not found:
                raise NoFaceError(source=name, reason=NO_FACE_ADVICE)
            box = found[0].box
        eyes = found[0].eyes if found else None
        region = self.region(image, box, eyes)
        return Face(self._finish(region), _in_original(box, scale), image,
                    [_in_original(f.box, scale) for f in found], _region_sized(region),
                    scale=scale)

    def crop(self, image: Image.Image, box, eyes=None) -> Image.Image:
        """The face as the model sees it (see region)."""
        return self._finish(self.region(image, box, eyes))

    def region(self, image: Image.Image, box, eyes=None) -> Image.Image:
        """Square region around the box at full resolution, widened by the margin (outside the
        photo pads black). With eyes (a detection's landmarks) and align on, the face is first
        turned about the box's centre so that its eyes are level, as in nearly all training
        faces."""
        x0, y0, x1, y1 = box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w, h = x1 - x0, y1 - y0
        if self.view.face.square:
            w = h = max(w, h)
        w, h = w * (1 + 2 * self.margin), h * (1 + 2 * self.margin)
        angle = 0.0
        if eyes is not None and self.view.face.align:
            left_x, left_y, right_x, right_y = eyes
            angle = math.degrees(math.atan2(right_y - left_y, right_x - left_x))
        if abs(angle) < 1:
            region = (round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))
            return image.crop(region)
        # Turn a region around the face big enough for the crop's corners, then cut the crop.
        half = math.ceil(max(w, h) * 0.75)
        around = image.crop((round(cx) - half, round(cy) - half, round(cx) + half, round(cy) + half))
        level = around.rotate(angle, resample=Image.BILINEAR)   # counter-clockwise, about the centre
        return level.crop((round(half - w / 2), round(half - h / 2),
                           round(half + w / 2), round(half + h / 2)))

    def _finish(self, face: Image.Image) -> Image.Image:
        if self.view.grey:
            face = face.convert("L")
        source = self.view.face.source_size
        if source:
            # Through the training images' own resolution, so detail and blur match them.
            face = face.resize((source, source), Image.BICUBIC, reducing_gap=2.0)
        # Bilinear up to the input size, as torchvision resizes the training images.
        size = self.view.input_size
        return face.resize((size, size), Image.BILINEAR).convert("RGB")


def _region_sized(region: Image.Image) -> Image.Image:
    return region.convert("RGB").resize((REGION_SIDE, REGION_SIDE), Image.BICUBIC,
                                        reducing_gap=2.0)
