"""Checkpoints: safetensors weights plus JSON metadata in the same file. Nothing is unpickled."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import CheckpointError
from .model import ModelConfig, SiameseResNet18

FORMAT = "fecsim-1"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "fecsim-fer2013.safetensors"


def save(path, model: SiameseResNet18, meta: dict, dtype=torch.float16) -> Path:
    """Write weights (fp16 by default: half the size, no measurable change in output) and meta."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    meta = dict(meta, format=FORMAT, model=model.config.to_dict())
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata={"fecsim": json.dumps(meta)})
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint under the real name
    return path


def read_meta(path) -> dict:
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("fecsim")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without fecsim metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt fecsim metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, this code reads {FORMAT!r}")
    problem = _meta_problem(meta)
    if problem:
        raise CheckpointError(f"{path}: metadata field {problem}")
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
              ("calibration.scale", True, number, "a finite number"),
              ("calibration.bias", True, number, "a finite number"),
              ("calibration.threshold", True, lambda v: number(v) and 0 <= v <= 1, "in [0, 1]"),
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
              ("int8.sha256", True, lambda v: isinstance(v, str) and len(v) == 64, "a sha256")]
    for name, required, ok, wanted in checks:
        parent, _, key = name.rpartition(".")
        holder = meta.get(parent) if parent else meta
        if not isinstance(holder, dict):
            continue   # an optional parent that is absent (a bad one was reported already)
        if key not in holder:
            if required:
                return f"{name} is missing"
            continue
        if not ok(holder[key]):
            return f"{name} must be {wanted} (got {holder[key]!r})"
    return ""


def load(path=None, device="cpu") -> tuple[SiameseResNet18, dict]:
    """Build the model a checkpoint describes and load its weights (float32, eval mode)."""
    path = _existing(path or SHIPPED)
    meta = read_meta(path)
    model = SiameseResNet18(ModelConfig.from_dict(meta["model"]))
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt weights ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model it describes ({exc})") from exc
    return model.to(device).eval(), meta


def load_average(paths, device="cpu") -> tuple[SiameseResNet18, list[dict]]:
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
            raise CheckpointError(f"{path}: its weights are not shaped like {paths[0]}'s, so the two "
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
        raise CheckpointError(f"{path}: checkpoint file not found")
    return path
