"""How a trained model looks at faces, the same in training, evaluation and inference: the face
framing, the input the encoder gets (zoom, mirror averaging) and the device. What it makes of a
pair of faces is in scoring.py."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Framing:
    """How a face box becomes a crop: made square, widened by margin per side, turned so the eyes
    are level (align, for detected faces), and resized through source_size px first (the
    training faces' own resolution) when that is set."""
    margin: float = 0.0
    square: bool = True
    source_size: int | None = None
    align: bool = False


@dataclass(frozen=True)
class View:
    """What the encoder sees of a face. The one set of defaults for checkpoints that omit a field."""
    input_size: int = 48
    grey: bool = True
    flip_average: bool = False
    zoom: float = 1.0
    face: Framing = field(default_factory=Framing)

    @classmethod
    def from_meta(cls, meta: dict) -> "View":
        """From a checkpoint's metadata, where the view's fields sit at the top level."""
        known = {f.name for f in fields(cls)} - {"face"}
        face = {k: v for k, v in meta.get("face", {}).items() if k in Framing.__dataclass_fields__}
        return cls(**{k: meta[k] for k in known if k in meta}, face=Framing(**face))

    def to_meta(self) -> dict:
        return asdict(self)


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else cuda, then mps, then cpu."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_inputs(images: torch.Tensor, view: View) -> torch.Tensor:
    """What the encoder sees of a batch of faces:
    - zoom < 1: the central share of each face, scaled back up. Training's random resized crops
      showed faces larger than whole ones look (Touvron et al., 2019, "FixRes");
    - flip_average: the mirror images too, after the faces, to be averaged with them."""
    size = images.shape[-1]
    if view.zoom < 1:
        side = round(size * view.zoom)
        start = (size - side) // 2
        images = F.interpolate(images[..., start:start + side, start:start + side], size=size,
                               mode="bilinear", align_corners=False)
    return torch.cat([images, images.flip(-1)]) if view.flip_average else images


def features(encoder, images: torch.Tensor, view: View) -> torch.Tensor:
    """z for a batch of faces. encoder: the model, or anything with its features() (the int8 copy).
    With flip_average, averaged with the mirrored face's: expressions are left-right symmetric,
    and the answer no longer depends on whether a camera mirrors."""
    z = encoder.features(model_inputs(images, view))   # the mirror images in the same pass
    if view.flip_average:
        z = (z[: len(images)] + z[len(images):]) / 2
    return z
