"""The face's second view: its geometry at full resolution, as MediaPipe Face Landmarker's 52
blendshapes (how far each facial action is engaged: brows down, lip corners pulled, jaw open...).

FER's 48 px crops lose a lowered brow or a pressed lip; the landmarker reads them from the photo's
own pixels. Its model (`face_landmarker.task`, Apache-2.0, from MediaPipe; provenance in the model
card) ships in this repository and is never downloaded. Without mediapipe, or when the landmarker
finds no face, a face simply has no geometry and the model reads its appearance alone.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import CheckpointError
from .files import shipped

LANDMARKER = shipped("checkpoints") / "face_landmarker.task"
LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"  # checked on load
FACE_SIDE = 128     # the face is shown to the landmarker this large...
PAD = 32            # ...inside a black border: its own face detector misses faces that fill the
                    # whole picture (98 % found on FER+ faces padded so, against 93 % unpadded)
MIN_CONFIDENCE = 0.3

# MediaPipe's blendshape order (face_landmarker.task v1): the model's geometry input.
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")


def mirror_pairs() -> tuple[list[int], list[tuple[int, int]]]:
    """Indices of the blendshapes without a side, and of each (left, right) pair: a mirror image
    swaps the two of a pair, so the model reads their mean and their difference's size."""
    index = {name: i for i, name in enumerate(BLENDSHAPES)}
    single = [i for name, i in index.items()
              if name != "_neutral" and not name.endswith(("Left", "Right"))]
    pairs = [(i, index[name[:-4] + "Right"]) for name, i in index.items() if name.endswith("Left")]
    return single, pairs


def landmarker_input(face: Image.Image) -> np.ndarray:
    """A face crop (any size, colour or grey) as the landmarker is shown it."""
    face = face.convert("RGB").resize((FACE_SIDE, FACE_SIDE), Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(ImageOps.expand(face, PAD, fill=(0, 0, 0))))


class FaceGeometry:
    """Blendshapes of face crops. One landmarker per thread (MediaPipe's graphs are not shared
    between threads); None for a face it does not find."""

    def __init__(self, task_path=LANDMARKER):
        self.task_path = Path(task_path)
        self._local = threading.local()
        self._opened = []

    def close(self) -> None:
        while self._opened:
            self._opened.pop().close()

    @classmethod
    def available(cls, task_path=LANDMARKER) -> "FaceGeometry | None":
        """A FaceGeometry when mediapipe is installed and the model file is there, else None."""
        try:
            import mediapipe  # noqa: F401
        except ImportError:
            return None
        return cls(task_path) if Path(task_path).is_file() else None

    def _landmarker(self):
        landmarker = getattr(self._local, "landmarker", None)
        if landmarker is None:
            from mediapipe.tasks.python import BaseOptions, vision
            bundle = self.task_path.read_bytes()
            if hashlib.sha256(bundle).hexdigest() != LANDMARKER_SHA256:
                raise CheckpointError(source=str(self.task_path), reason="not the face landmarker "
                                      "model the geometry head was trained on (sha256 differs)")
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=bundle),
                output_face_blendshapes=True, num_faces=1,
                min_face_detection_confidence=MIN_CONFIDENCE,
                min_face_presence_confidence=MIN_CONFIDENCE)
            landmarker = self._local.landmarker = vision.FaceLandmarker.create_from_options(options)
            if not self._opened:
                # Closed while mediapipe's dispatch threads still run: at interpreter exit its own
                # finaliser comes too late and prints a traceback. Hooks registered so run before
                # concurrent.futures shuts its threads down (an atexit hook runs after).
                threading._register_atexit(self.close)
            self._opened.append(landmarker)
        return landmarker

    def __call__(self, face: Image.Image) -> np.ndarray | None:
        """The 52 blendshape scores (BLENDSHAPES order) of one face crop, or None."""
        import mediapipe as mp
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=landmarker_input(face))
        result = self._landmarker().detect(image)
        if not result.face_blendshapes:
            return None
        return np.array([c.score for c in result.face_blendshapes[0]], dtype=np.float32)
