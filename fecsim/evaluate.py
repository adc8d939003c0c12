"""Scoring a model on a labelled split: balanced pairs and triplets drawn from a fixed seed."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import metrics
from .data import eval_transform, labelled_folder, sample_pairs, sample_triplets


@torch.no_grad()
def split_features(encoder, dataset, device, view: dict, batch_size: int = 256, workers: int = 0):
    """z for every image of a dataset, in order, with the labels. encoder: the model, or anything
    else with its features() (an int8.Int8Encoder); view: as features() takes it."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    feats, labels = [], []
    for images, y in loader:
        feats.append(features(encoder, images.to(device), view).cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels).numpy()


def model_inputs(images: torch.Tensor, view: dict) -> torch.Tensor:
    """What the encoder sees of a batch of faces, given a view (a checkpoint's meta will do):
    - zoom < 1: the central share of each face, scaled back up. Training's random resized crops
      showed faces larger than whole ones look, so a slightly closer view matches what the
      network learnt from (Touvron et al., 2019, "FixRes");
    - flip_average: the mirror images too, after the faces, to be averaged with them."""
    zoom, size = view.get("zoom", 1.0), images.shape[-1]
    if zoom < 1:
        side = round(size * zoom)
        start = (size - side) // 2
        images = F.interpolate(images[..., start:start + side, start:start + side], size=size,
                               mode="bilinear", align_corners=False)
    return torch.cat([images, images.flip(-1)]) if view.get("flip_average", False) else images


def features(encoder, images: torch.Tensor, view: dict) -> torch.Tensor:
    """z for a batch of faces. With flip_average, averaged with the mirrored face's: expressions
    are left-right symmetric, and the answer no longer depends on whether a camera mirrors."""
    z = encoder.features(model_inputs(images, view))   # the mirror images in the same pass
    if view.get("flip_average", False):
        z = (z[: len(images)] + z[len(images):]) / 2
    return z


@torch.no_grad()
def pair_logits(model, z: torch.Tensor, index_a, index_b, device) -> np.ndarray:
    za, zb = z[torch.as_tensor(index_a)].to(device), z[torch.as_tensor(index_b)].to(device)
    return model.pair_logits(za, zb).float().cpu().numpy()


def calibrated(logits, calibration: dict) -> np.ndarray:
    return 1 / (1 + np.exp(-(calibration["scale"] * np.asarray(logits) + calibration["bias"])))


def calibrate(model, z, labels, n_pairs: int, seed: int, device) -> dict:
    """Platt scaling on balanced pairs, and the verdict threshold that is most accurate on them."""
    pairs = sample_pairs(labels, n_pairs, seed)
    logits = pair_logits(model, z, pairs[:, 0], pairs[:, 1], device)
    scale, bias = metrics.fit_platt(logits, pairs[:, 2])
    calibration = {"scale": scale, "bias": bias}
    probabilities = calibrated(logits, calibration)
    threshold, acc = metrics.best_threshold(probabilities, pairs[:, 2])
    ece, _ = metrics.reliability(probabilities, pairs[:, 2])
    return dict(calibration, threshold=threshold, fitted_on_pairs=n_pairs, seed=seed,
                fit_accuracy=round(acc, 4), fit_ece=round(ece, 4))


def score(model, z, labels, calibration: dict, n_pairs: int, n_triplets: int, seed: int,
          device, intervals: bool = False) -> dict:
    """Pair ROC-AUC, accuracy at the stored threshold and at the best one, ECE, triplet accuracy;
    with intervals, 95 % bootstrap intervals too: how far each figure could move with other
    pairs and triplets drawn alike."""
    pairs = sample_pairs(labels, n_pairs, seed)
    p = calibrated(pair_logits(model, z, pairs[:, 0], pairs[:, 1], device), calibration)
    same, threshold = pairs[:, 2], calibration["threshold"]
    ece, table = metrics.reliability(p, same)
    result = {
        "pairs": n_pairs,
        "pair_auc": round(metrics.roc_auc(p, same), 4),
        "pair_accuracy": round(metrics.accuracy(p, same, threshold), 4),
        "pair_accuracy_best_threshold": round(metrics.best_threshold(p, same)[1], 4),
        "ece": round(ece, 4),
        "reliability": table,
    }
    if intervals:
        result["pair_auc_interval"] = _rounded(metrics.bootstrap_interval(metrics.roc_auc, p, same))
        result["pair_accuracy_interval"] = _rounded(metrics.bootstrap_interval(
            lambda p_, y_: metrics.accuracy(p_, y_, threshold), p, same))
    if n_triplets:
        t = sample_triplets(labels, n_triplets, seed)
        p12 = pair_logits(model, z, t[:, 0], t[:, 1], device)
        p13 = pair_logits(model, z, t[:, 0], t[:, 2], device)
        p23 = pair_logits(model, z, t[:, 1], t[:, 2], device)
        right = metrics.odd_from_pair_probabilities(p12, p13, p23) == t[:, 3]
        result.update(triplets=n_triplets, triplet_accuracy=round(float(right.mean()), 4))
        if intervals:
            result["triplet_accuracy_interval"] = _rounded(metrics.bootstrap_interval(np.mean, right))
    return result


def _rounded(interval) -> list:
    return [round(v, 4) for v in interval]


def evaluate_folder(model, meta: dict, root, n_pairs=1000, n_triplets=1000, seed=0, device="cpu",
                    encoder=None):
    """The model card's numbers for one labelled split (e.g. fer2013/test); encoder: what computes
    the features, when not the model itself (its int8 copy)."""
    dataset = labelled_folder(root, eval_transform(meta["input_size"], meta.get("grey", True)))
    z, labels = split_features(encoder or model, dataset, device, meta)
    return score(model, z, labels, meta["calibration"], n_pairs, n_triplets, seed, device,
                 intervals=True)
