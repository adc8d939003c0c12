"""Training the expression heads on a frozen trunk: the appearance classifier and the geometry
view's head (model.GeometryHead), from every training face's features computed once.

The trunk already reads appearance well; what a new view or a new balance of expressions needs is
the heads, which train in seconds on stored features where the trunk takes hours. Features are
computed once (flip-averaged, as inference sees faces) and kept in the run's folder, so a run
started again resumes from them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, WeightedRandomSampler

from .data import class_balance_weights


def head_parameters(model) -> list:
    heads = [model.classifier] + ([model.geometry] if model.geometry is not None else [])
    return [p for head in heads for p in head.parameters()]


def fit_heads(model, z: torch.Tensor, votes: torch.Tensor, epochs: int, lr: float,
              balance: float, seed: int, batch_size: int = 256, weight_decay: float = 1e-3,
              feature_noise: float = 0.05, drop_geometry: float = 0.1, log=print) -> list[dict]:
    """Train model.classifier (and model.geometry) on features z (N x model.feature_dim) toward
    each face's vote distribution (N x classes; one-hot for single labels).
    - balance: classes drawn in proportion to count^(1 - balance), as train.py's --balance;
    - feature_noise: Gaussian noise on the appearance features, relative to their spread: stored
      features of training faces are cleaner than those of faces the trunk never saw;
    - drop_geometry: the share of faces whose geometry is hidden in each batch, so the heads also
      learn to answer from appearance alone (a face the landmarker misses, the live mode)."""
    torch.manual_seed(seed)
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(False)
    params = head_parameters(model)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sampler = WeightedRandomSampler(class_balance_weights(votes.argmax(1), balance), len(z))
    spread = z[:, : model.z_dim].std()
    history = []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for index in BatchSampler(sampler, batch_size, drop_last=True):
            batch = z[index].clone()
            batch[:, : model.z_dim] += feature_noise * spread * torch.randn_like(batch[:, : model.z_dim])
            if model.geometry is not None:
                batch[torch.rand(len(batch)) < drop_geometry, model.z_dim:] = 0
            loss = -(votes[index] * F.log_softmax(model.classify(batch), -1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        history.append({"epoch": epoch + 1, "loss": round(total / len(z), 4)})
        log(f"heads epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']}")
    for name, p in model.named_parameters():
        p.requires_grad_(trainable[name])
    return history


def adjust_for_priors(model, targets, strength: float) -> list[float]:
    """Subtract strength * log(class prior) from the classifier's biases (logit adjustment,
    Menon et al., 2021): a face between a common and a rare expression (subtle anger against
    neutral) leans less toward the common one. Returns the adjustment, per class."""
    counts = np.bincount(np.asarray(targets), minlength=model.config.num_classes).astype(float)
    shift = -strength * np.log(np.maximum(counts, 1) / counts.sum())
    with torch.no_grad():
        model.classifier.bias += torch.as_tensor(shift, dtype=model.classifier.bias.dtype)
    return [round(float(v), 4) for v in shift]


def cached(path: Path, compute) -> torch.Tensor:
    """compute(), kept at path: a run started again reads it instead."""
    if path.is_file():
        return torch.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path)
    return value
