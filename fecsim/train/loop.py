"""The training loop: losses on labelled batches, pairs or triplets; resumable; device-agnostic.

A batch is a dict. Whatever parts it holds are trained on, summed:
- images, labels: every pair inside the batch (same label = same expression) with BCE, balanced
  between same and different pairs, plus cross-entropy on the labels when the model has a classifier;
- a, b, same: explicit labelled pairs with BCE (thesis pairs, flagged pairs from the app).
FEC's triplet batches (anchor, positive, negative, margin) have their own loss,
fecsim.train.fec.loss.triplet_and_pair_loss, which train.py hands to fit as loss_fn.

Distributed: under torchrun (WORLD_SIZE > 1) setup_distributed joins the process group (nccl on
GPUs, gloo on CPU) and fit wraps the model in DistributedDataParallel; a plain run is unchanged.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..files import atomic_path
from ..metrics import agreement
from ..model import SiameseResNet18
from ..view import pick_device


@dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(requested: str | None = None, timeout_minutes: int = 120) -> Distributed:
    """Join torchrun's process group when it started this process; otherwise one plain process.

    torchrun sets WORLD_SIZE, RANK and LOCAL_RANK (and the rendezvous for multi-node runs). Each
    process takes the GPU of its LOCAL_RANK, or the CPU. The long timeout covers the other ranks
    waiting while rank 0 evaluates after an epoch.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(device=pick_device(requested))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if requested in (None, "", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device(requested or "cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=timedelta(minutes=timeout_minutes))
    return Distributed(rank, local, world, device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _WithLoss(nn.Module):
    """The loss as a module's forward. DistributedDataParallel synchronises gradients only for what
    runs inside its forward, and the losses call the model's own methods (features, pair_logits)."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.module, self.loss_fn = model, loss_fn

    def forward(self, batch: dict):
        return self.loss_fn(self.module, batch)


def _check_same_start(start: int, device: torch.device) -> None:
    """Every rank must resume from the same epoch (out_dir on storage all nodes share)."""
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([start, -start], device=where)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != -int(t[1]):
        raise RuntimeError(f"ranks would resume from epochs {-int(t[1])}..{int(t[0])}: run_dir/last.pt "
                           "must be on storage every node sees")


def _check_in_sync(model: nn.Module, device: torch.device) -> None:
    """Every rank must end with the same weights; if not, gradients were never synchronised."""
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    total = sum(p.detach().double().sum() for p in model.parameters()).to(where)
    t = torch.stack([total, -total])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if not torch.isclose(t[0], -t[1], rtol=1e-9, atol=1e-9):
        raise RuntimeError(f"ranks ended with different weights ({float(-t[1])} .. {float(t[0])})")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def pair_targets(labels: torch.Tensor, i, j) -> torch.Tensor:
    """How "same" each pair (i, j) is: 1/0 for labels; for vote distributions (N x C), the chance
    that one rater of each face names the same expression (graded: 0.6 sad + 0.4 neutral against
    a clearly sad face gives 0.6)."""
    if labels.dim() == 2:
        return agreement(labels[i].float(), labels[j].float())
    return (labels[i] == labels[j]).float()


def in_batch_pair_loss(model: SiameseResNet18, z: torch.Tensor, labels: torch.Tensor,
                       teacher=None, teacher_z: torch.Tensor | None = None) -> torch.Tensor:
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=z.device)
    same = pair_targets(labels, i, j)
    logits = model.pair_logits(z[i], z[j]).float()
    # Weight so same and different pairs count equally, as in the balanced evaluation pairs.
    n_same = same.sum().clamp(min=1)
    n_diff = (1 - same).sum().clamp(min=1)
    weight = same * (len(same) / (2 * n_same)) + (1 - same) * (len(same) / (2 * n_diff))
    loss = F.binary_cross_entropy_with_logits(logits, same, weight=weight)
    if teacher is None:
        return loss
    soft = teacher.pair_probabilities(teacher_z, i, j)
    return ((1 - teacher.weight) * loss
            + teacher.weight * F.binary_cross_entropy_with_logits(logits, soft, weight=weight))


def batch_loss(model: SiameseResNet18, batch: dict, class_weight: float = 1.0,
               label_smoothing: float = 0.0, teacher=None) -> tuple[torch.Tensor, dict]:
    """teacher: a distill.Teacher, whose answers on the batch's images join their labels."""
    parts = {}
    if "images" in batch:
        z = model.features(batch["images"])
        teacher_z = teacher.features(batch["images"]) if teacher is not None else None
        parts["pairs"] = in_batch_pair_loss(model, z, batch["labels"], teacher, teacher_z)
        if model.classifier is not None and class_weight > 0:
            logits = model.classify(z).float()
            # Labels, or vote distributions as soft targets (cross-entropy takes either).
            loss = F.cross_entropy(logits, batch["labels"], label_smoothing=label_smoothing)
            if teacher is not None:
                loss = ((1 - teacher.weight) * loss
                        + teacher.weight * teacher.class_loss(logits, teacher_z))
            parts["classes"] = class_weight * loss
    if "a" in batch:
        parts["extra_pairs"] = F.binary_cross_entropy_with_logits(
            model(batch["a"], batch["b"]).float(), batch["same"].float())
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
    Under torch.distributed (world size > 1) the model is wrapped in DistributedDataParallel here;
    make_batches must then give each rank its share (a DistributedSampler with set_epoch), and only
    the main process (is_main) evaluates and writes, while the others wait at a barrier.
    """
    run_dir = Path(run_dir)
    if is_main:   # made up front: the run's other files go here too, even when epochs=0
        run_dir.mkdir(parents=True, exist_ok=True)
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
    distributed = _distributed()
    world = dist.get_world_size() if distributed else 1
    step = lambda batch: loss_fn(model, batch)  # noqa: E731
    if distributed:
        _check_same_start(start, device)
        step = DistributedDataParallel(_WithLoss(_unwrap(model), loss_fn),
                                       device_ids=[device.index] if device.type == "cuda" else None)
    for epoch in range(start, epochs):
        model.train()
        sums, count, t0, images = {}, 0, time.time(), 0
        batches = make_batches(epoch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not is_main, mininterval=5)
        for batch in bar:
            batch = to_device(batch, device)
            with autocast(device):
                loss, parts = step(batch)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            count += 1
            images += sum(len(v) for k, v in batch.items()
                          if k in ("images", "a", "b", "anchor", "positive", "negative"))
            for k, v in dict(parts, loss=float(loss.detach())).items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", refresh=False)
        record = {"epoch": epoch + 1, **{k: round(v / max(count, 1), 5) for k, v in sums.items()},
                  "images_per_s": round(world * images / (time.time() - t0), 1),
                  "lr": optimizer.param_groups[0]["lr"]}
        if is_main:
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    record.update(evaluate(_unwrap(model)))
            history.append(record)
            log(" ".join(f"{k}={v}" for k, v in record.items()))
            with atomic_path(state_path) as tmp:
                torch.save({"model": _unwrap(model).state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict() if scheduler is not None else None,
                            "epoch": epoch + 1, "history": history}, tmp)
        if distributed:
            dist.barrier()  # the other ranks wait here while the main one evaluates and saves
    if distributed:
        _check_in_sync(_unwrap(model), device)
    return history


def _unwrap(model):
    """The plain model inside DistributedDataParallel, or the model itself."""
    return getattr(model, "module", model)
