"""ExpressionComparer: the one object the app, the CLI and users call."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from . import checkpoint
from .checkpoint import Metadata
from .errors import CheckpointError, FecsimError
from .faces import Face, FaceCropper
from .geometry import BLENDSHAPES, FaceGeometry
from .int8 import Int8Encoder
from .model import split_geometry
from .scoring import calibrated, is_same, odd_one_out, pair_logits
from .view import features, pick_device


@dataclass
class PairResult:
    probability: float        # calibrated P(same expression)
    same: bool                # probability >= the checkpoint's threshold
    threshold: float
    faces: tuple              # (Face, Face): crops the model saw, boxes, originals
    seconds: float
    expressions: tuple = (None, None)   # per face: {class name: probability}, or None without
                                        # a classifier
    geometry: tuple = (None, None)      # per face: how much its geometry view counted (0-1), or
                                        # None where it had none (see views)

    @property
    def verdict(self) -> str:
        return "same expression" if self.same else "different expression"

    @property
    def views(self) -> tuple:
        """Per face, the views the model read: appearance always, geometry where it had one."""
        return tuple(("appearance",) if g is None else ("appearance", "geometry")
                     for g in self.geometry)

    def to_dict(self) -> dict:
        return {"probability": round(self.probability, 4), "same": self.same,
                "verdict": self.verdict, "threshold": round(self.threshold, 4),
                "box_a": list(self.faces[0].box), "box_b": list(self.faces[1].box),
                "other_faces_a": self.faces[0].others, "other_faces_b": self.faces[1].others,
                "expressions_a": _rounded(self.expressions[0]),
                "expressions_b": _rounded(self.expressions[1]),
                "views_a": list(self.views[0]), "views_b": list(self.views[1]),
                "geometry_weight_a": _round(self.geometry[0]),
                "geometry_weight_b": _round(self.geometry[1]),
                "seconds": round(self.seconds, 3)}


@dataclass
class TripletResult:
    odd: int                  # 1, 2 or 3: the image whose expression is the odd one out
    probabilities: dict       # {"12": p, "13": p, "23": p}: calibrated P(same) of each pair
    faces: tuple
    seconds: float
    expressions: tuple = (None, None, None)

    def to_dict(self) -> dict:
        return {"odd": self.odd, **{f"p{k}": round(v, 4) for k, v in self.probabilities.items()},
                "boxes": [list(f.box) for f in self.faces],
                "expressions": [_rounded(e) for e in self.expressions],
                "seconds": round(self.seconds, 3)}


@dataclass
class RankedPhoto:
    source: object            # what was given (a path, an image)
    probability: float | None  # calibrated P(same expression as the reference); None: error
    face: Face | None         # its crop and boxes (face.image is None: not kept)
    error: str | None = None  # why this photo could not be scored (no face, not an image)


class ExpressionComparer:
    def __init__(self, model, meta: Metadata, path, device, int8: bool | None = None,
                 geometry: bool = True):
        """geometry: read each face's geometry view too, where the model has one and mediapipe
        is installed (off: appearance alone, faster; the live mode's choice)."""
        self.model, self.meta, self.path = model, meta, Path(path)
        self.view = meta.view
        # Channels-last convolutions run faster on CPU (oneDNN), with the same numbers.
        self.model.to(memory_format=torch.channels_last)
        self.int8 = int8
        self._cpu_encoder = None   # the int8 copy (or the model), built on the first move to the CPU
        self.to(device)
        self.cropper = FaceCropper(self.view, device="cpu")
        self.geometry = (FaceGeometry.available() if geometry and model.geometry is not None
                         else None)
        self._sha256 = None
        # Threads that detect faces side by side (a pair's two photos, a batch's many): one torch
        # thread each, since MTCNN's ops are small and threads each asking for every core only get
        # in each other's way.
        self.detect_pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="fecsim-faces",
                                              initializer=torch.set_num_threads, initargs=(1,))

    @classmethod
    def load(cls, checkpoint_path=None, device=None, int8=None,
             geometry: bool = True) -> "ExpressionComparer":
        """The shipped model when checkpoint_path is None; device None picks cuda, mps or cpu.
        int8 None: on the CPU, the checkpoint's int8 encoder where it has one; False: never."""
        path = checkpoint_path or checkpoint.SHIPPED
        device = pick_device(device)
        model, meta = checkpoint.load(path, device)
        return cls(model, meta, path, device, int8, geometry)

    @property
    def sha256(self) -> str:
        """The checkpoint file's hash: which model gave an answer (stored with flags)."""
        if self._sha256 is None:
            self._sha256 = checkpoint.sha256(self.path)
        return self._sha256

    def to(self, device) -> "ExpressionComparer":
        """Move to device; the encoder (what turns crops into features) follows: the int8 copy on
        the CPU where there is one, else the model itself."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.encoder = self.model
        if self.device.type == "cpu" and self.int8 is not False:
            if self._cpu_encoder is None:   # once: it hashes the file and starts a session
                self._cpu_encoder = Int8Encoder.for_checkpoint(self.path, self.meta) or self.model
            self.encoder = self._cpu_encoder
        if self.int8 and self.encoder is self.model:
            raise CheckpointError("no int8 encoder to run (it needs the CPU and a checkpoint "
                                  "exported with one)", source=str(self.path))
        # Each encoder's features have their own calibration.
        self.calibration = self.meta.calibration_for(int8=self.encoder is not self.model)
        self.threshold = float(self.calibration["threshold"])
        return self

    def face(self, source, box=None, fec_box=None, assume_cropped=False) -> Face:
        return self.cropper(source, box=box, fec_box=fec_box,
                            assume_cropped=assume_cropped)

    def face_with_geometry(self, source, box=None, assume_cropped=False) -> Face:
        """face(), with the face's blendshapes where the geometry view is on."""
        face = self.face(source, box, assume_cropped=assume_cropped)
        if self.geometry is not None:
            face.blendshapes = self.geometry(face.region)
        return face

    def faces(self, sources, boxes, assume_cropped=False) -> tuple:
        """Face for each source, detected side by side: MTCNN's small ops leave cores idle."""
        return tuple(self.detect_pool.map(
            lambda job: self.face_with_geometry(job[0], job[1], assume_cropped), zip(sources, boxes)))

    @torch.no_grad()
    def features(self, crops) -> torch.Tensor:
        """z for face crops (Face objects or PIL crops already at the model's input size)."""
        images = [c.crop if isinstance(c, Face) else c for c in crops]
        batch = torch.stack([pil_to_tensor(_sized(i, self.view.input_size)) for i in images])
        batch = batch.to(self.device, torch.float32) / 255
        if self.encoder is self.model:   # the int8 encoder takes plain NCHW arrays
            batch = batch.contiguous(memory_format=torch.channels_last)
        z = features(self.encoder, batch, self.view)
        if self.model.geometry is None:
            return z
        blendshapes = [getattr(c, "blendshapes", None) for c in crops]
        return torch.cat([z.float(), geometry_columns(blendshapes).to(z.device)], 1)

    @torch.no_grad()
    def embed(self, crops) -> torch.Tensor:
        """L2-normalised expression embeddings, one row per face crop."""
        z = self.features(crops)[:, : self.model.z_dim]   # the appearance view
        return torch.nn.functional.normalize(z.float(), dim=-1).cpu()

    @torch.no_grad()
    def pair_probabilities(self, za: torch.Tensor, zb: torch.Tensor) -> np.ndarray:
        return calibrated(pair_logits(self.model, za, zb, self.device), self.calibration)

    def triplet_probabilities(self, za, zb, zc) -> tuple[np.ndarray, np.ndarray]:
        """For rows of three faces' z: calibrated P(same) of pairs 12, 13, 23 (n x 3), and which
        face (1, 2 or 3) is the odd one out of each row."""
        p = np.stack([self.pair_probabilities(x, y) for x, y in ((za, zb), (za, zc), (zb, zc))], 1)
        return p, odd_one_out(p)

    @torch.no_grad()
    def geometry_weights(self, z: torch.Tensor) -> tuple:
        """Per face, how much its geometry view counted (0-1), or None where it had none."""
        if self.model.geometry is None:
            return (None,) * len(z)
        weights = self.model.geometry_weight(z.to(self.device)).float().cpu().tolist()
        found = split_geometry(z, self.model.z_dim)[2].squeeze(-1).tolist()
        return tuple(w if f else None for w, f in zip(weights, found))

    @property
    def class_names(self) -> list[str]:
        """The classifier's expression classes, in its output order (from the checkpoint)."""
        config = self.model.config
        return list(config.class_names) or [f"class {i}" for i in range(config.num_classes)]

    @torch.no_grad()
    def expressions(self, z: torch.Tensor) -> list:
        """Each face's distribution over the expression classes, {name: probability} from the
        most likely down; [None, ...] for a model without a classifier."""
        if self.model.classifier is None:
            return [None] * len(z)
        probabilities = torch.softmax(self.model.classify(z.to(self.device)).float(), -1).cpu()
        names = self.class_names
        return [dict(sorted(zip(names, map(float, row)), key=lambda kv: -kv[1]))
                for row in probabilities]

    def compare(self, a, b, box_a=None, box_b=None, assume_cropped=False) -> PairResult:
        start = time.perf_counter()
        faces = self.faces((a, b), (box_a, box_b), assume_cropped)
        z = self.features(faces)
        p = float(self.pair_probabilities(z[:1], z[1:])[0])
        return PairResult(p, bool(is_same(p, self.threshold)), self.threshold, faces,
                          time.perf_counter() - start, tuple(self.expressions(z)),
                          self.geometry_weights(z))

    def odd_one_out(self, a, b, c, boxes=(None, None, None), assume_cropped=False) -> TripletResult:
        start = time.perf_counter()
        faces = self.faces((a, b, c), boxes, assume_cropped)
        z = self.features(faces)
        p, odd = self.triplet_probabilities(z[:1], z[1:2], z[2:])
        p12, p13, p23 = p[0]
        return TripletResult(int(odd[0]), {"12": float(p12), "13": float(p13), "23": float(p23)}, faces,
                             time.perf_counter() - start, tuple(self.expressions(z)))

    def rank(self, reference, photos, assume_cropped=False) -> list[RankedPhoto]:
        """Photos ranked by P(same expression as the reference), best first: "who copied it
        best?". A photo that cannot be scored (no face, not an image) is listed last with its
        error instead of stopping the ranking; a bad reference raises."""
        # Only the crops, regions and boxes are kept: sixty photos must not stay in memory.
        reference_face = replace(self.face_with_geometry(reference, assume_cropped=assume_cropped),
                                 image=None)

        def face_or_error(source):
            try:
                return replace(self.face_with_geometry(source, assume_cropped=assume_cropped),
                               image=None)
            except FecsimError as exc:
                return exc

        found = list(self.detect_pool.map(face_or_error, photos))
        faces = [f for f in found if isinstance(f, Face)]
        scores = iter([])
        if faces:
            z = self.features([reference_face, *faces])
            scores = iter(self.pair_probabilities(z[:1].expand(len(faces), -1), z[1:]))
        ranked = [RankedPhoto(s, float(next(scores)), f) if isinstance(f, Face)
                  else RankedPhoto(s, None, None, f.reason) for s, f in zip(photos, found)]
        return sorted(ranked, key=lambda r: -1 if r.probability is None else r.probability,
                      reverse=True)


def geometry_columns(blendshapes) -> torch.Tensor:
    """The geometry view's feature columns for each face: its blendshapes and 1, or zeros where
    it has none (not computed, or the landmarker found no face)."""
    rows = [np.append(b, 1.0) if b is not None else np.zeros(len(BLENDSHAPES) + 1)
            for b in blendshapes]
    return torch.as_tensor(np.stack(rows), dtype=torch.float32)


def _round(value):
    return None if value is None else round(value, 4)


def _rounded(distribution):
    return None if distribution is None else {k: round(v, 4) for k, v in distribution.items()}


def _sized(image: Image.Image, size: int) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == (size, size) else image.resize((size, size), Image.BILINEAR)
