"""P(same expression), in one place: the pair head's logits, their calibration into a probability,
the verdict (the probability against the threshold) and the odd-one-out rule. Inference, training's
validation, distillation and evaluation all go through here: a change to how P(same) is computed
or fitted (its calibration target, its threshold) is a change to this file."""
from __future__ import annotations

import numpy as np
import torch

from . import metrics

TRIPLET_PAIRS = ((0, 1), (0, 2), (1, 2))   # pairs 12, 13, 23 of a triplet


@torch.no_grad()
def pair_logits(model, za: torch.Tensor, zb: torch.Tensor, device="cpu") -> np.ndarray:
    """The pair head's logits for the faces za[k], zb[k] (features, one row per face)."""
    return model.pair_logits(za.to(device), zb.to(device)).float().cpu().numpy()


def indexed_pair_logits(model, z: torch.Tensor, index_a, index_b, device="cpu") -> np.ndarray:
    """The pair head's logits for rows index_a[k], index_b[k] of z."""
    return pair_logits(model, z[torch.as_tensor(index_a)], z[torch.as_tensor(index_b)], device)


def triplet_logits(model, z: torch.Tensor, triplets: np.ndarray, device="cpu") -> np.ndarray:
    """n x 3 pair-head logits of pairs 12, 13, 23 for rows (i, j, k, ...) of triplets."""
    triplets = np.asarray(triplets)
    if not len(triplets):
        return np.zeros((0, 3))
    return np.stack([indexed_pair_logits(model, z, triplets[:, i], triplets[:, j], device)
                     for i, j in TRIPLET_PAIRS], 1)


def uncalibrated(logits: torch.Tensor) -> torch.Tensor:
    """The model's own P(same), before calibration: what its pair loss (BCE on logits) trains,
    and what a teacher hands a student as its soft pair targets."""
    return torch.sigmoid(logits.float())


def calibrated(logits, calibration: dict) -> np.ndarray:
    """Calibrated P(same expression) from pair logits: Platt scaling, or beta calibration where
    the calibration has a curvature (metrics.fit_beta)."""
    x = np.asarray(logits, dtype=np.float64)
    z = calibration["scale"] * x + calibration["bias"]
    if calibration.get("curvature"):
        z = z + calibration["curvature"] * (np.logaddexp(0, x) + np.logaddexp(0, -x))
    return 1 / (1 + np.exp(-z))


def is_same(probability, threshold: float):
    """The verdict: same expression when P(same) reaches the threshold (arrays element-wise)."""
    return probability >= threshold


def odd_one_out(similarity: np.ndarray) -> np.ndarray:
    """The odd one (1, 2 or 3) of each triplet: the face outside its most similar pair.
    similarity: n x 3 scores of pairs 12, 13, 23, any monotone measure (logits, probabilities);
    a tie goes to the earlier pair."""
    return np.array([3, 2, 1])[np.argmax(np.asarray(similarity), axis=-1)]


def vote_target(model):
    """What a model's probability is fitted to on pairs of vote-labelled faces, and its name.
    Expression pair scores: how far the two faces' vote distributions overlap (metrics.overlap),
    which is 1 for a face and itself, so a perfect copy can score as one. The pair head (older
    models): rater agreement, which a face the raters split on never reaches, even with itself."""
    if model.config.pair_score == "expressions":
        return metrics.overlap, "vote overlap"
    return metrics.agreement, "rater agreement"


def fit_options(model) -> dict:
    """How a model's calibration is fitted. Expression pair scores: beta calibration (their
    overlaps bend where a logistic curve cannot follow), and the verdict fixed at 0.5, so that the
    verdict and the percentage never disagree. The pair head (older models): Platt scaling and
    the most accurate threshold."""
    return {"threshold": 0.5, "curved": True} if model.config.pair_score == "expressions" else {}


def fit_calibration(logits, target, same, /, threshold=None, curved=False, **about) -> dict:
    """Platt (or, curved, beta) calibration of pair logits to target (0/1, or graded), and the
    verdict threshold: the one given, else the most accurate on the same/different answers `same`;
    about: provenance."""
    if curved:
        scale, bias, curvature = metrics.fit_beta(logits, target)
        calibration = {"scale": scale, "bias": bias, "curvature": curvature}
    else:
        scale, bias = metrics.fit_platt(logits, target)
        calibration = {"scale": scale, "bias": bias}
    probabilities = calibrated(logits, calibration)
    if threshold is None:
        threshold, acc = metrics.best_threshold(probabilities, same)
    else:
        acc = metrics.accuracy(probabilities, same, threshold)
    ece, _ = metrics.reliability(probabilities, target)
    return dict(calibration, threshold=threshold, fitted_on_pairs=int(len(logits)), **about,
                fit_accuracy=round(acc, 4), fit_ece=round(ece, 4))
