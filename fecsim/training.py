"""The training loop: losses on labelled batches, pairs or triplets; resumable; device-agnostic.

A batch is a dict. Whatever parts it holds are trained on, summed:
- images, labels: every pair inside the batch (same label = same expression) with BCE, balanced
  between same and different pairs, plus cross-entropy on the labels when the model has a classifier;
- a, b, same: explicit labelled pairs with BCE (thesis pairs, flagged pairs from the app);
- anchor, positive, negative, margin: a triplet loss on normalised embeddings (FEC triplets).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .model import SiameseResNet18


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def in_batch_pair_loss(model: SiameseResNet18, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=z.device)
    same = (labels[i] == labels[j]).float()
    logits = model.pair_logits(z[i], z[j]).float()
    # Weight so same and different pairs count equally, as in the balanced evaluation pairs.
    n_same = same.sum().clamp(min=1)
    n_diff = (1 - same).sum().clamp(min=1)
    weight = same * (len(same) / (2 * n_same)) + (1 - same) * (len(same) / (2 * n_diff))
    return F.binary_cross_entropy_with_logits(logits, same, weight=weight)


def batch_loss(model: SiameseResNet18, batch: dict, class_weight: float = 1.0,
               label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    parts = {}
    if "images" in batch:
        z = model.features(batch["images"])
        parts["pairs"] = in_batch_pair_loss(model, z, batch["labels"])
        if model.classifier is not None and class_weight > 0:
            parts["classes"] = class_weight * F.cross_entropy(
                model.classify(z).float(), batch["labels"], label_smoothing=label_smoothing)
    if "a" in batch:
        parts["extra_pairs"] = F.binary_cross_entropy_with_logits(
            model(batch["a"], batch["b"]).float(), batch["same"].float())
    if "anchor" in batch:
        n = len(batch["anchor"])
        e = model.embed(torch.cat([batch["anchor"], batch["positive"], batch["negative"]]))
        ea, ep, en = e[:n], e[n:2 * n], e[2 * n:]
        # FECNet's loss: squared distances, per-triplet margin (0.1 one-class, 0.2 otherwise).
        d_pos, d_neg = (ea - ep).pow(2).sum(-1), (ea - en).pow(2).sum(-1)
        parts["triplets"] = F.relu(d_pos - d_neg + batch["margin"]).mean()
    if not parts:
        raise ValueError(f"batch has nothing to train on: keys {sorted(batch)}")
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def fit(model, optimizer, scheduler, make_batches, epochs: int, run_dir, device,
        loss_fn=batch_loss, evaluate=None, is_main: bool = True, log=print) -> list[dict]:
    """Train for `epochs`, resuming from run_dir/last.pt when it exists; returns the history.

    make_batches(epoch) -> iterable of batch dicts (a fresh shuffle each epoch).
    evaluate(model) -> dict of metrics, run after each epoch on the main process.
    The state is written atomically after every epoch, so a kill loses at most one epoch.
    """
    run_dir = Path(run_dir)
    state_path = run_dir / "last.pt"
    start, history = 0, []
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]
        if is_main:
            log(f"resumed from {state_path} after epoch {start}")
    for epoch in range(start, epochs):
        model.train()
        sums, count, t0, images = {}, 0, time.time(), 0
        batches = make_batches(epoch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not is_main, mininterval=5)
        for batch in bar:
            batch = to_device(batch, device)
            with autocast(device):
                loss, parts = loss_fn(model, batch)
            if not math.isfinite(float(loss)):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            count += 1
            images += sum(len(v) for k, v in batch.items()
                          if k in ("images", "a", "b", "anchor", "positive", "negative"))
            for k, v in dict(parts, loss=float(loss)).items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", refresh=False)
        record = {"epoch": epoch + 1, **{k: round(v / max(count, 1), 5) for k, v in sums.items()},
                  "images_per_s": round(images / (time.time() - t0), 1),
                  "lr": optimizer.param_groups[0]["lr"]}
        if is_main:
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    record.update(evaluate(_unwrap(model)))
            history.append(record)
            log(" ".join(f"{k}={v}" for k, v in record.items()))
            run_dir.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "epoch": epoch + 1, "history": history}, tmp)
            tmp.replace(state_path)
    return history


def _unwrap(model):
    """The plain model inside DistributedDataParallel, or the model itself."""
    return getattr(model, "module", model)
