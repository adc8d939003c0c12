"""The Siamese network: one torchvision ResNet18 trunk shared by both images, and a pair head.

Two heads:
- "similarity" (ours): trunk -> linear projection z; the pair head sees (|za - zb|, za * zb) of the
  L2-normalised projections, so its answer for (a, b) equals its answer for (b, a) by construction.
  An optional classifier on z lets labelled folders teach the trunk with cross-entropy too.
- "concat" (the 2023 thesis): 512+512 trunk features concatenated -> 256 -> 1. Concatenation is
  order-dependent, so the head is applied to both orders and the logits averaged.
Inputs are float images in [0, 1], N x 3 x H x W; normalisation happens inside the model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from urllib.error import URLError

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from .errors import FecsimError
from .geometry import BLENDSHAPES, mirror_pairs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRUNK_FEATURES = 512


@dataclass
class ModelConfig:
    head: str = "similarity"          # "similarity" or "concat" (thesis)
    embed_dim: int = 128              # projection size for the similarity head
    pair_hidden: int = 64             # hidden units of the pair head (256 for the thesis head)
    num_classes: int = 0              # >0 adds an expression classifier on z (labelled-folder training)
    class_names: list = field(default_factory=list)
    # "head": the pair head's logit. "expressions": how far the two faces' expression distributions
    # overlap (Bhattacharyya coefficient, as a logit): 1 for two identical faces by construction.
    pair_score: str = "head"
    pair_temperature: float = 1.0     # the distributions are sharpened by this for pair scores
    geometry: bool = False            # a second view: the face's blendshapes (geometry.py)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        config = cls(**known)
        config.mean, config.std = tuple(config.mean), tuple(config.std)
        return config

    def to_dict(self) -> dict:
        return asdict(self)


def imagenet_resnet18() -> nn.Module:
    """ResNet18 with ImageNet weights; needs a network on first use (then torch's cache)."""
    try:
        return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    except (URLError, OSError, RuntimeError) as exc:
        raise FecsimError(
            "ImageNet weights for ResNet18 could not be downloaded, and this configuration needs "
            "them (the thesis preset starts from a frozen ImageNet ResNet18). Connect to a network "
            "once, or put resnet18-f37072fd.pth in torch's hub cache (TORCH_HOME), or train from "
            f"scratch without --preset thesis. Download error: {exc}") from exc


class SiameseResNet18(nn.Module):
    def __init__(self, config: ModelConfig | None = None, imagenet: bool = False,
                 freeze_trunk: bool = False):
        super().__init__()
        self.config = config = config or ModelConfig()
        if config.head not in ("similarity", "concat"):
            raise ValueError(f"unknown head {config.head!r}")
        if config.pair_score not in ("head", "expressions"):
            raise ValueError(f"unknown pair score {config.pair_score!r}")
        if (config.pair_score == "expressions" or config.geometry) and not config.num_classes:
            raise ValueError("expression pair scores and the geometry view need a classifier")
        trunk = imagenet_resnet18() if imagenet else resnet18()
        trunk.fc = nn.Identity()
        self.trunk = trunk
        self.freeze_trunk = freeze_trunk
        if freeze_trunk:
            self.trunk.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        if config.head == "similarity":
            self.project = nn.Linear(TRUNK_FEATURES, config.embed_dim)
            self.pair_head = nn.Sequential(
                nn.Linear(2 * config.embed_dim, config.pair_hidden), nn.ReLU(),
                nn.Linear(config.pair_hidden, 1)) if config.pair_score == "head" else None
            z_dim = config.embed_dim
        else:
            self.project = nn.Identity()
            self.pair_head = nn.Sequential(
                nn.Linear(2 * TRUNK_FEATURES, config.pair_hidden), nn.ReLU(),
                nn.Linear(config.pair_hidden, 1))
            z_dim = TRUNK_FEATURES
        self.classifier = nn.Linear(z_dim, config.num_classes) if config.num_classes else None
        self.z_dim = z_dim
        self.geometry = GeometryHead(z_dim, config.num_classes) if config.geometry else None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_trunk:
            self.trunk.eval()  # a frozen trunk keeps its BatchNorm statistics too
        return self

    @property
    def feature_dim(self) -> int:
        """Columns of a face's features: z, then with the geometry view its blendshapes and
        whether the landmarker found the face (GEOMETRY_COLUMNS)."""
        return self.z_dim + (GEOMETRY_COLUMNS if self.geometry is not None else 0)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """z: the appearance features (the trunk's view; geometry is appended by the caller)."""
        return self.project(self.trunk((images - self.mean) / self.std))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised expression embeddings (for triplet losses and nearest neighbours)."""
        return F.normalize(self.features(images).float(), dim=-1)

    def pair_logits(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        """Logit of 'same expression' for each row pair of features; symmetric in (za, zb)."""
        if self.config.pair_score == "expressions":
            t = self.config.pair_temperature
            pa = torch.softmax(self.classify(za).float() / t, -1)
            pb = torch.softmax(self.classify(zb).float() / t, -1)
            overlap = (pa * pb).clamp_min(0).sqrt().sum(-1).clamp(OVERLAP_EPS, 1 - OVERLAP_EPS)
            return torch.logit(overlap)
        za, zb = za[..., : self.z_dim], zb[..., : self.z_dim]
        if self.config.head == "similarity":
            ea, eb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
            return self.pair_head(torch.cat([(ea - eb).abs(), ea * eb], dim=-1)).squeeze(-1)
        ab = self.pair_head(torch.cat([za, zb], dim=-1))
        ba = self.pair_head(torch.cat([zb, za], dim=-1))
        return ((ab + ba) / 2).squeeze(-1)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Expression logits from a face's features: the appearance classifier's, plus the
        geometry view's through its gate when the model has one."""
        if self.classifier is None:
            raise FecsimError("this model has no expression classifier (num_classes=0)")
        logits = self.classifier(z[..., : self.z_dim])
        if self.geometry is not None:
            logits = logits + self.geometry(*split_geometry(z, self.z_dim))
        return logits

    def geometry_weight(self, z: torch.Tensor) -> torch.Tensor:
        """How much each face's geometry counted (the gate, 0-1; 0 without geometry)."""
        if self.geometry is None:
            return torch.zeros(len(z))
        return self.geometry.gate_of(*split_geometry(z, self.z_dim)).squeeze(-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = self.features(torch.cat([a, b]))
        return self.pair_logits(z[: len(a)], z[len(a):])


OVERLAP_EPS = 1e-4    # distribution overlaps are kept inside (eps, 1 - eps) to have a logit
GEOMETRY_COLUMNS = len(BLENDSHAPES) + 1   # blendshapes, then 1 where the landmarker found the face


def split_geometry(z: torch.Tensor, z_dim: int):
    """(appearance z, blendshapes, found) of features laid out as feature_dim says."""
    return z[..., :z_dim], z[..., z_dim:-1], z[..., -1:]


class GeometryHead(nn.Module):
    """Expression logits from the face's blendshapes, added to the appearance classifier's through
    a gate that reads both views. Where the landmarker found no face the gate is 0 and the trunk
    alone answers; where its fit is unsure, the gate learnt from the votes how far to trust it.
    Blendshapes are read mirror-invariantly (each left/right pair as its mean and the size of
    its difference), so a face and its mirror image read alike."""

    def __init__(self, z_dim: int, num_classes: int, hidden: int = 96, gate_hidden: int = 32):
        super().__init__()
        single, pairs = mirror_pairs()
        self.register_buffer("single", torch.tensor(single), persistent=False)
        self.register_buffer("left", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("right", torch.tensor([p[1] for p in pairs]), persistent=False)
        inputs = len(single) + 2 * len(pairs)
        self.expression = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(hidden, num_classes))
        self.gate = nn.Sequential(nn.Linear(z_dim + inputs, gate_hidden), nn.ReLU(),
                                  nn.Linear(gate_hidden, 1))

    def symmetric(self, blendshapes: torch.Tensor) -> torch.Tensor:
        left, right = blendshapes[..., self.left], blendshapes[..., self.right]
        return torch.cat([blendshapes[..., self.single], (left + right) / 2, (left - right).abs()], -1)

    def gate_of(self, z, blendshapes, found) -> torch.Tensor:
        return self._gate(z, self.symmetric(blendshapes), found)

    def _gate(self, z, g, found) -> torch.Tensor:
        return torch.sigmoid(self.gate(torch.cat([z, g], -1))) * found

    def forward(self, z, blendshapes, found) -> torch.Tensor:
        g = self.symmetric(blendshapes)
        return self._gate(z, g, found) * self.expression(g)


# One expression under the names different data sets give it (FER2013's -> FER+'s).
SAME_EXPRESSION = {"angry": "anger", "happy": "happiness", "sad": "sadness"}


def load_parent_weights(model: SiameseResNet18, parent: SiameseResNet18) -> list[str]:
    """Load a trained model's weights into `model` (fine-tuning). Where their expression classes
    differ, the classifier takes the parent's row for each class both know, under either name,
    and the other classes keep their fresh initialisation. Returns those fresh classes."""
    mine = model.state_dict()
    # A head one model has and the other lacks (the pair head, the geometry view) is dropped or
    # starts fresh; everything else must fit exactly.
    state = {k: v for k, v in parent.state_dict().items() if k in mine}
    state.update({k: v for k, v in mine.items()
                  if k.startswith(("geometry.", "pair_head.")) and k not in state})
    new_names, old_names = model.config.class_names, parent.config.class_names
    if model.classifier is None or parent.classifier is None or new_names == old_names:
        model.load_state_dict(state)
        return []
    weight, bias = model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()
    old_index = {SAME_EXPRESSION.get(name, name): i for i, name in enumerate(old_names)}
    fresh = []
    for i, name in enumerate(new_names):
        j = old_index.get(SAME_EXPRESSION.get(name, name))
        if j is None:
            fresh.append(name)
        else:
            weight[i], bias[i] = state["classifier.weight"][j], state["classifier.bias"][j]
    model.load_state_dict({**state, "classifier.weight": weight, "classifier.bias": bias})
    return fresh
