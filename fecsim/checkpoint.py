"""Checkpoints: safetensors weights plus JSON metadata in the same file. Nothing is unpickled."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import CheckpointError
from .files import atomic_path, shipped
from .model import ModelConfig, SiameseResNet18
from .text import quoted
from .view import View

FORMAT = "fecsim-1"
SHIPPED = shipped("checkpoints") / "fecsim-v4.safetensors"


@dataclass
class Int8File:
    """The int8 encoder beside a checkpoint, and the calibration fitted on its features."""
    file: str
    sha256: str
    calibration: dict | None = None    # None in checkpoints exported before per-encoder calibration
    calibration_faces: int | None = None   # how many faces set the encoder's activation ranges
                                           # (the stored name predates the distinction)


@dataclass
class Metadata:
    """A checkpoint's metadata. Stored as one JSON object: the view's fields at the top level,
    then calibration, int8, data, training, metrics, model and anything else, kept as read."""
    view: View = field(default_factory=View)
    calibration: dict = field(default_factory=dict)   # the float model's (older checkpoints with
                                                      # an int8 encoder: the int8 encoder's)
    int8: Int8File | None = None
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    model: ModelConfig | None = None                  # filled in by save() and read back
    other: dict = field(default_factory=dict)

    def calibration_for(self, int8: bool) -> dict:
        """The calibration of the encoder that runs. A checkpoint without a float calibration of
        its own (exported before there was one) gives its only one to both."""
        if int8 and self.int8 is not None and self.int8.calibration is not None:
            return self.int8.calibration
        return self.calibration

    @classmethod
    def from_dict(cls, meta: dict) -> "Metadata":
        rest = {k: v for k, v in meta.items()
                if k not in {*View.__dataclass_fields__, "calibration", "int8", "data", "training",
                             "metrics", "model", "format"}}
        return cls(View.from_meta(meta), meta.get("calibration", {}),
                   Int8File(**meta["int8"]) if meta.get("int8") else None, meta.get("data", {}),
                   meta.get("training", {}), meta.get("metrics", {}),
                   ModelConfig.from_dict(meta["model"]) if "model" in meta else None, rest)

    def to_dict(self) -> dict:
        meta = {**self.other, **self.view.to_meta(), "calibration": self.calibration}
        if self.int8 is not None:
            meta["int8"] = {k: v for k, v in vars(self.int8).items() if v is not None}
        meta.update(data=self.data, training=self.training, metrics=self.metrics)
        if self.model is not None:
            meta["model"] = self.model.to_dict()
        return meta


def save(path, model: SiameseResNet18, meta: Metadata | dict, dtype=torch.float16) -> Path:
    """Write weights (fp16 by default: half the size, no measurable change in output) and meta."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    record = meta.to_dict() if isinstance(meta, Metadata) else dict(meta)
    record.update(format=FORMAT, model=model.config.to_dict())
    with atomic_path(path) as tmp:   # a crash never leaves a half-written checkpoint
        save_file(state, str(tmp), metadata={"fecsim": json.dumps(record)})
    return path


def read_meta(path) -> Metadata:
    return Metadata.from_dict(_read_record(path))


def _read_record(path) -> dict:
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("fecsim")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(source=str(path), reason=f"not a readable safetensors file ({exc})") from exc
    if raw is None:
        raise CheckpointError(source=str(path), reason=f"safetensors file without fecsim metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(source=str(path), reason=f"corrupt fecsim metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(source=str(path), reason=f"format {meta.get('format')!r}, this code reads {FORMAT!r}")
    problem = _meta_problem(meta)
    if problem:
        raise CheckpointError(source=str(path), reason=f"metadata field {problem}")
    return meta


def _meta_problem(meta: dict) -> str:
    """The first field that code reading the metadata would trip on, with why; "" if none.
    Checked as a whole on load, so a bad file fails here and not later with a KeyError."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def whole(v, low, high):
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    checks = [("input_size", True, lambda v: whole(v, 16, 1024), "a whole number of pixels, 16-1024"),
              ("grey", False, lambda v: isinstance(v, bool), "true or false"),
              ("flip_average", False, lambda v: isinstance(v, bool), "true or false"),
              ("zoom", False, lambda v: number(v) and 0 < v <= 1, "a number in (0, 1]"),
              ("model", True, lambda v: isinstance(v, dict), "an object"),
              ("calibration", True, lambda v: isinstance(v, dict), "an object"),
              ("face", False, lambda v: isinstance(v, dict), "an object"),
              ("face.margin", False, lambda v: number(v) and -0.5 < v < 2, "a number in (-0.5, 2)"),
              ("face.square", False, lambda v: isinstance(v, bool), "true or false"),
              ("face.align", False, lambda v: isinstance(v, bool), "true or false"),
              ("face.source_size", False, lambda v: v is None or whole(v, 1, 4096),
               "null or a whole number of pixels"),
              ("int8", False, lambda v: isinstance(v, dict), "an object"),
              # A plain file name beside the checkpoint: a path could point anywhere.
              ("int8.file", True, lambda v: isinstance(v, str) and v not in ("", ".", "..")
               and Path(v).name == v and "\\" not in v, "a file name beside the checkpoint"),
              ("int8.sha256", True, lambda v: isinstance(v, str) and len(v) == 64, "a sha256"),
              ("int8.calibration", False, lambda v: isinstance(v, dict), "an object"),
              # The model's shape: bounded, so that a bad file cannot ask for 512 GB of weights.
              ("model.head", False, lambda v: v in ("similarity", "concat"),
               '"similarity" or "concat"'),
              ("model.embed_dim", False, lambda v: whole(v, 1, 4096), "a whole number, 1-4096"),
              ("model.pair_hidden", False, lambda v: whole(v, 1, 4096), "a whole number, 1-4096"),
              ("model.num_classes", False, lambda v: whole(v, 0, 1000), "a whole number, 0-1000"),
              ("model.class_names", False, lambda v: isinstance(v, list) and len(v) <= 1000 and
               all(isinstance(n, str) and len(n) <= 100 for n in v), "a list of short names"),
              ("model.mean", False, lambda v: isinstance(v, list) and len(v) == 3 and
               all(number(x) for x in v), "three numbers"),
              ("model.std", False, lambda v: isinstance(v, list) and len(v) == 3 and
               all(number(x) and x > 0 for x in v), "three positive numbers"),
              ("model.pair_score", False, lambda v: v in ("head", "expressions"),
               '"head" or "expressions"'),
              ("model.pair_temperature", False, lambda v: number(v) and 0.01 <= v <= 100,
               "a number, 0.01-100"),
              ("model.geometry", False, lambda v: isinstance(v, bool), "true or false")]
    for prefix in ("calibration", "int8.calibration"):
        checks += [(f"{prefix}.scale", True, number, "a finite number"),
                   (f"{prefix}.bias", True, number, "a finite number"),
                   (f"{prefix}.curvature", False, number, "a finite number"),
                   (f"{prefix}.threshold", True, lambda v: number(v) and 0 <= v <= 1, "in [0, 1]")]
    for name, required, ok, wanted in checks:
        *parents, key = name.split(".")
        holder = meta
        for parent in parents:
            holder = holder.get(parent) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue   # an optional parent that is absent (a bad one was reported already)
        if key not in holder:
            if required:
                return f"{name} is missing"
            continue
        if not ok(holder[key]):
            return f"{name} must be {wanted} (got {quoted(holder[key])})"
    model = meta.get("model") or {}
    if model.get("num_classes") and model.get("class_names") and \
            len(model["class_names"]) != model["num_classes"]:
        return "model.class_names must name each of model.num_classes classes"
    if (model.get("pair_score") == "expressions" or model.get("geometry")) and not model.get("num_classes"):
        return "model.pair_score \"expressions\" and model.geometry need model.num_classes > 0"
    return ""


def load(path=None, device="cpu") -> tuple[SiameseResNet18, Metadata]:
    """Build the model a checkpoint describes and load its weights (float32, eval mode)."""
    path = _existing(path or SHIPPED)
    meta = read_meta(path)
    model = SiameseResNet18(meta.model)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(source=str(path), reason=f"truncated or corrupt weights ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(source=str(path), reason=f"weights do not fit the model it describes ({exc})") from exc
    return model.to(device).eval(), meta


def load_average(paths, device="cpu") -> tuple[SiameseResNet18, list[Metadata]]:
    """One model whose weights are the mean of several checkpoints', and their metadata.

    A "model soup" (Wortsman et al., 2022): fine-tunes of one model, averaged, often beat each of
    them, and hold up better on other data. Only fine-tunes of a common parent average well; the
    shapes are checked here, the common parent is the caller's to know. BatchNorm's running
    statistics are averaged too; integer buffers come from the first checkpoint.
    """
    model, meta = load(paths[0], device)
    metas = [meta]
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    totals = {k: v.double() for k, v in model.state_dict().items() if v.is_floating_point()}
    for path in paths[1:]:
        other, other_meta = load(path, device)
        state = other.state_dict()
        if {k: v.shape for k, v in state.items()} != shapes:
            raise CheckpointError(source=str(path), reason=f"its weights are not shaped like {paths[0]}'s, so the two "
                                  "cannot be averaged")
        for k in totals:
            totals[k] += state[k].double()
        metas.append(other_meta)
    model.load_state_dict({k: (v / len(paths)).float() for k, v in totals.items()}, strict=False)
    return model, metas


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(source=str(path), reason=f"checkpoint file not found")
    return path
