"""How a model holds up when a face is not a perfectly framed FER2013 crop.

The app sees webcam and phone photos: faces found by the detector, framed a little differently,
compressed, blurred, badly lit, mirrored, tilted. Each face of a split is shown to the model
through the app's own path (ExpressionComparer: cropper, encoder, calibration) under each of
those conditions, and the split's pair and triplet figures are compared with the clean crops'.

A 48 px face is first upscaled 4x (bicubic) into a "photo", which the conditions act on.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from .data import VoteFolder, expression_split
from ..errors import FecsimError, NoFaceError
from .evaluate import CLEAR_MIN_FACES, CLEAR_VOTES, clear_majority, score

UPSCALE = 4
CONDITIONS = {
    "clean": "the crop as the data set has it",
    "detector": "found by MTCNN in a 2x larger grey canvas, cropped as the app crops",
    "framing": "box shifted and scaled by up to 10 % of its side",
    "jpeg30": "JPEG at quality 30",
    "blur": "Gaussian blur, 2 px at 4x (0.5 px at 48 px)",
    "low_light": "40 % brightness with sensor noise",
    "mirror": "mirrored left-right",
    "tilt": "head tilted by 15 degrees",
    "tilt_detected": "head tilted by 15 degrees, found by MTCNN as in 'detector'",
}


def _photo(face: Image.Image) -> Image.Image:
    return face.convert("RGB").resize((face.width * UPSCALE, face.height * UPSCALE), Image.BICUBIC)


def condition_face(comparer, photo: Image.Image, condition: str, rng: np.random.Generator):
    """The crop the model sees of `photo` under `condition`; None when the detector finds nothing."""
    side = photo.width
    if condition in ("detector", "tilt_detected"):
        if condition == "tilt_detected":
            photo = photo.rotate(15, resample=Image.BILINEAR)
        canvas = Image.new("RGB", (2 * side, 2 * side), (128, 128, 128))
        canvas.paste(photo, (side // 2, side // 2))
        try:
            return comparer.face(canvas).crop
        except NoFaceError:
            return None
    if condition == "framing":
        # The box the app would have found, before its margin, moved and scaled.
        margin = comparer.cropper.margin
        size = side / (1 + 2 * margin) * (1 + rng.uniform(-0.1, 0.1))
        cx, cy = side / 2 + rng.uniform(-0.1, 0.1, size=2) * side
        return comparer.cropper.crop(photo, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2))
    if condition == "jpeg30":
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=30)
        photo = Image.open(buffer)
    elif condition == "blur":
        photo = photo.filter(ImageFilter.GaussianBlur(2))
    elif condition == "low_light":
        dark = np.asarray(ImageEnhance.Brightness(photo).enhance(0.4), dtype=np.float32)
        dark = dark + rng.normal(0, 4, dark.shape)
        photo = Image.fromarray(dark.clip(0, 255).astype(np.uint8))
    elif condition == "mirror":
        photo = ImageOps.mirror(photo)
    elif condition == "tilt":
        photo = photo.rotate(15, resample=Image.BILINEAR)
    elif condition != "clean":
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return comparer.face(photo, assume_cropped=True).crop


def evaluate_robustness(comparer, root, n_faces=1000, n_pairs=1000, n_triplets=1000, seed=0,
                        conditions=tuple(CONDITIONS), min_faces=CLEAR_MIN_FACES) -> dict:
    """Pair AUC, pair accuracy at the model's threshold and triplet accuracy under each condition,
    on n_faces faces of the split (a vote-labelled split's clear-majority faces), with the drop
    from the clean crops. Faces the detector misses are counted and scored from their clean crop."""
    split = expression_split(root)
    faces = (clear_majority(split, CLEAR_VOTES, min_faces) if isinstance(split, VoteFolder)
             else list(range(len(split))))
    if len({split.targets[i] for i in faces}) < 2:
        raise FecsimError(source=str(root), reason=f"fewer than two expressions with {min_faces} "
                                                   "clear-majority faces")
    rng = np.random.default_rng(seed)
    faces = sorted(rng.choice(faces, size=min(n_faces, len(faces)), replace=False).tolist())
    labels = np.asarray([split.targets[i] for i in faces])
    photos = [_photo(split[i][0]) for i in faces]
    result = {"faces": len(faces), "conditions": {}}
    for condition in conditions:
        rng = np.random.default_rng(seed + 1)   # the same draws for every model
        crops = [condition_face(comparer, p, condition, rng) for p in photos]
        missed = sum(c is None for c in crops)
        crops = [c if c is not None else condition_face(comparer, p, "clean", rng)
                 for c, p in zip(crops, photos)]
        with torch.no_grad():
            z = torch.cat([comparer.features(crops[i:i + 256]).cpu() for i in range(0, len(crops), 256)])
        s = score(comparer.model, z, labels, comparer.calibration, n_pairs, n_triplets, seed,
                  comparer.device)
        row = {k: s[k] for k in ("pair_auc", "pair_accuracy", "triplet_accuracy")}
        if condition in ("detector", "tilt_detected"):
            row["detected"] = round(1 - missed / len(crops), 4)
        result["conditions"][condition] = row
    clean = result["conditions"].get("clean")
    if clean:
        for row in result["conditions"].values():
            row["drop"] = {k: round(clean[k] - row[k], 4)
                           for k in ("pair_auc", "pair_accuracy", "triplet_accuracy")}
    return result
