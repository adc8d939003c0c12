"""Scoring a model: features of a dataset, pair logits, the calibration fit, and the figures of a
labelled or vote-labelled split (balanced pairs and triplets drawn from a fixed seed). FEC's
triplet files are scored in fec/evaluate.py with the same pieces."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import metrics
from .data import VoteFolder, eval_transform, expression_split, sample_pairs, sample_triplets
from ..scoring import calibrated, fit_calibration, indexed_pair_logits, odd_one_out, triplet_logits
from ..view import View, features


@torch.no_grad()
def dataset_features(encoder, dataset, view: View, device, batch_size: int = 256,
                     workers: int = 0) -> torch.Tensor:
    """z of every face of a dataset, in order; its items are images or (image, label).
    encoder: the model, or its int8 copy."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = [features(encoder, (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device),
                    view).float().cpu() for batch in loader]
    return torch.cat(out) if out else torch.zeros(0, 1)


def calibrate(model, z, labels, n_pairs: int, seed: int, device, votes=None) -> dict:
    """Calibration on balanced pairs of a labelled split. votes (N x C vote distributions): fit
    the probability to the chance that one rater of each face names the same expression,
    rather than to whether the majority labels agree."""
    pairs = sample_pairs(labels, n_pairs, seed)
    logits = indexed_pair_logits(model, z, pairs[:, 0], pairs[:, 1], device)
    target = pairs[:, 2] if votes is None else metrics.agreement(votes[pairs[:, 0]], votes[pairs[:, 1]])
    return fit_calibration(logits, target, pairs[:, 2], seed=seed,
                           target="rater agreement" if votes is not None else "same label")


def score(model, z, labels, calibration: dict, n_pairs: int, n_triplets: int, seed: int,
          device, intervals: bool = False) -> dict:
    """Pair ROC-AUC, accuracy at the stored threshold and at the best one, ECE, triplet accuracy;
    with intervals, 95 % bootstrap intervals too: how far each figure could move with other
    pairs and triplets drawn alike."""
    pairs = sample_pairs(labels, n_pairs, seed)
    p = calibrated(indexed_pair_logits(model, z, pairs[:, 0], pairs[:, 1], device), calibration)
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
        right = triplet_accuracy(model, z, sample_triplets(labels, n_triplets, seed), device)
        result.update(triplets=n_triplets, triplet_accuracy=round(float(right.mean()), 4))
        if intervals:
            result["triplet_accuracy_interval"] = _rounded(metrics.bootstrap_interval(np.mean, right))
    return result


def clear_majority(split, min_votes: int, min_faces: int = 0) -> list[int]:
    """Indices of a vote-labelled split's faces whose majority expression has at least min_votes
    votes, among the expressions with at least min_faces such faces."""
    agreed = [i for i, votes in enumerate(split.agreement) if votes >= min_votes]
    counts = np.bincount([split.targets[i] for i in agreed], minlength=len(split.classes))
    return [i for i in agreed if counts[split.targets[i]] >= min_faces]


def _rounded(interval) -> list:
    return [round(v, 4) for v in interval]


def graded_triplets(votes: np.ndarray, n: int, seed: int, margin: float = 0.3) -> np.ndarray:
    """n triplets (i, j, k, odd) of faces whose votes make one face clearly the odd one: the
    agreement of the other two beats each of its own by at least margin (metrics.agreement)."""
    rng = np.random.default_rng(seed)
    rows = np.empty((0, 4), dtype=np.int64)
    for _ in range(100):
        t = rng.integers(len(votes), size=(20 * n, 3))
        t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])]
        a = np.stack([metrics.agreement(votes[t[:, 1]], votes[t[:, 2]]),    # face 1 odd
                      metrics.agreement(votes[t[:, 0]], votes[t[:, 2]]),    # face 2 odd
                      metrics.agreement(votes[t[:, 0]], votes[t[:, 1]])], 1)  # face 3 odd
        top = np.sort(a, 1)
        clear = top[:, 2] - top[:, 1] >= margin
        rows = np.concatenate([rows, np.column_stack([t[clear], a[clear].argmax(1) + 1])])
        if len(rows) >= n:
            break
    return rows[:n]


def triplet_accuracy(model, z, triplets: np.ndarray, device) -> np.ndarray:
    """Whether the model names each triplet's odd face (rows i, j, k, odd)."""
    return odd_one_out(triplet_logits(model, z, triplets, device)) == triplets[:, 3]


# FER+'s clear-majority faces: at least 6 of 10 votes, over expressions with 40 such faces or more.
CLEAR_VOTES, CLEAR_MIN_FACES = 6, 40


def evaluate_folder(model, view: View, calibration: dict, root, n_pairs=1000, n_triplets=1000,
                    seed=0, device="cpu", encoder=None, clear_min_faces=CLEAR_MIN_FACES):
    """The model card's numbers for one split (e.g. fer2013/test or ferplus/test); encoder: what
    computes the features, when not the model itself (its int8 copy), with its calibration.

    A vote-labelled split (FER+) is scored four ways: its clear-majority faces, all faces by
    majority label, graded triplets (the odd face by the votes), and the probability against rater
    agreement (is P(same) = 0.7 right 70 % of the time, as one rater per face would answer?)."""
    dataset = expression_split(root, eval_transform(view.input_size, view.grey))
    z = dataset_features(encoder or model, dataset, view, device)
    labels, cal = np.asarray(dataset.targets), calibration
    if not isinstance(dataset, VoteFolder):
        return score(model, z, labels, cal, n_pairs, n_triplets, seed, device, intervals=True)
    clear = clear_majority(dataset, CLEAR_VOTES, clear_min_faces)
    votes = dataset.votes.numpy()
    triplets = graded_triplets(votes, n_triplets, seed)
    right = triplet_accuracy(model, z, triplets, device)
    pairs = sample_pairs(labels, n_pairs, seed)
    p = calibrated(indexed_pair_logits(model, z, pairs[:, 0], pairs[:, 1], device), cal)
    ece, table = metrics.reliability(p, metrics.agreement(votes[pairs[:, 0]], votes[pairs[:, 1]]))
    expressions = sorted({dataset.classes[labels[i]] for i in clear})
    return {
        "clear_majority": dict(score(model, z[clear], labels[clear], cal, n_pairs, n_triplets, seed,
                                     device, intervals=True) if len(expressions) > 1 else {},
                               faces=len(clear), min_votes=CLEAR_VOTES, min_faces=clear_min_faces,
                               expressions=expressions),
        "majority": dict(score(model, z, labels, cal, n_pairs, n_triplets, seed, device,
                               intervals=True), faces=len(labels)),
        "graded_triplets": {"triplets": len(triplets), "accuracy": round(float(right.mean()), 4),
                            "interval": _rounded(metrics.bootstrap_interval(np.mean, right))},
        "agreement_calibration": {"pairs": n_pairs, "ece": round(ece, 4), "reliability": table},
        "dropped_unreadable": dataset.dropped,
    }
