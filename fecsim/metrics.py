"""Pair and triplet metrics, and the calibration that makes a probability mean what it says."""
from __future__ import annotations

import numpy as np
import torch


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both positive and negative pairs")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average the ranks of tied scores.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def accuracy(probabilities, labels, threshold: float) -> float:
    return float(np.mean((np.asarray(probabilities) >= threshold) == np.asarray(labels).astype(bool)))


def best_threshold(probabilities, labels) -> tuple[float, float]:
    """The threshold with the highest accuracy on these pairs, and that accuracy."""
    probabilities = np.asarray(probabilities)
    candidates = np.unique(np.concatenate([probabilities, [0.5]]))
    accs = [accuracy(probabilities, labels, t) for t in candidates]
    i = int(np.argmax(accs))
    return float(candidates[i]), float(accs[i])


def reliability(probabilities, labels, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the per-bin table (mean predicted vs observed rate)."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        predicted, observed = probabilities[mask].mean(), labels[mask].mean()
        ece += mask.mean() * abs(predicted - observed)
        table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "pairs": int(mask.sum()),
                      "predicted": round(float(predicted), 3), "observed": round(float(observed), 3)})
    return float(ece), table


def fit_platt(logits, labels, steps: int = 200) -> tuple[float, float]:
    """Platt scaling: p = sigmoid(scale * logit + bias), fitted by maximum likelihood."""
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    scale, bias = params.detach().tolist()
    return float(scale), float(bias)


def fit_beta(logits, labels, steps: int = 200) -> tuple[float, float, float]:
    """Beta calibration (Kull et al., 2017) of a score s in (0, 1) given as its logit x:
    logit p = a ln s - b ln(1 - s) + c with a, b >= 0, fitted by maximum likelihood. Monotone like
    Platt scaling (a = b), but it can bend: overlaps near 0 and 1 are not mapped as a logistic
    curve would. Returned as (scale, bias, curvature), the form calibrated_logit reads:
    scale * x + bias + curvature * (softplus(x) + softplus(-x))."""
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    params = torch.tensor([0.5413, 0.5413, 0.0], dtype=torch.float64, requires_grad=True)  # a=b=1
    optimizer = torch.optim.LBFGS([params], max_iter=steps, line_search_fn="strong_wolfe")
    softplus = torch.nn.functional.softplus

    def closure():
        optimizer.zero_grad()
        a, b = softplus(params[0]), softplus(params[1])
        z = -a * softplus(-x) + b * softplus(x) + params[2]    # ln s = -softplus(-x), ...
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = (float(softplus(v)) for v in params.detach()[:2])
    return (a + b) / 2, float(params.detach()[2]), (b - a) / 2


def bootstrap_interval(statistic, *columns, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of statistic(*columns), resampling rows with replacement.

    The rows (pairs, triplets) are the unit: right when they seldom share faces, as 1000 pairs
    drawn from a split of thousands do. (scipy.stats.bootstrap does the same; scipy is not a
    runtime dependency.)
    """
    columns = [np.asarray(c) for c in columns]
    rng = np.random.default_rng(seed)
    n = len(columns[0])
    values = []
    for _ in range(resamples):
        rows = rng.integers(n, size=n)
        try:
            values.append(statistic(*(c[rows] for c in columns)))
        except ValueError:      # a resample without both classes has no AUC: skip it
            continue
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def overlap(votes_a, votes_b):
    """How far two faces' vote distributions overlap (Bhattacharyya coefficient, sum of
    sqrt(p_a * p_b)): 1 when people would name the two faces' expressions in the same proportions,
    0 when no expression is named for both. A face against itself is always 1."""
    return np.sqrt(np.clip(votes_a * votes_b, 0, None)).sum(-1)


def agreement(votes_a, votes_b):
    """The chance that one rater of face a and one of face b name the same expression, from their
    vote distributions (rows): graded similarity, 1 only for two unanimous faces alike."""
    return (votes_a * votes_b).sum(-1)

