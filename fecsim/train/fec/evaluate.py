"""Scoring on FEC: triplet prediction accuracy (which face is the odd one out) over the triplets
with a clear majority, overall and per triplet type; the thesis's pair view beside its
majority-class rate; and Platt calibration on the pairs that triplets order.

FECNet (Vemulapalli & Agarwala, CVPR 2019) reports 81.8 % triplet prediction accuracy on the test set.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ... import metrics
from ..data import eval_transform
from ..evaluate import dataset_features
from ...scoring import TRIPLET_PAIRS, calibrated, fit_calibration, odd_one_out, triplet_logits
from ...view import View
from .datasets import CropCache, Faces
from .reader import TRIPLET_TYPES, read_triplets

FECNET_ACCURACY = 0.818


def odd_by_embedding(z: torch.Tensor, index: np.ndarray) -> np.ndarray:
    """FECNet's rule: the odd one is outside the pair closest in the normalised embedding."""
    e = torch.nn.functional.normalize(z.float(), dim=-1)
    return odd_one_out(np.stack([-(e[index[:, i]] - e[index[:, j]]).pow(2).sum(-1).numpy()
                                 for i, j in TRIPLET_PAIRS], 1))


def accuracy_by_type(predicted, answers, kinds) -> dict:
    """{"all": {...}, <type>: {...}}, each {"triplets": n, "accuracy": share predicted right}."""
    predicted, answers, kinds = np.asarray(predicted), np.asarray(answers), np.asarray(kinds)
    right = predicted == answers
    result = {"all": {"triplets": int(len(right)),
                      "accuracy": round(float(right.mean()), 4) if len(right) else None}}
    for kind in TRIPLET_TYPES:
        mask = kinds == kind
        if mask.any():
            result[kind] = {"triplets": int(mask.sum()), "accuracy": round(float(right[mask].mean()), 4)}
    return result


def closer_farther_labels(odd: np.ndarray) -> np.ndarray:
    """n x 3 labels of pairs (1,2), (1,3), (2,3): 1 for the pair without the odd one."""
    return np.stack([odd == 3, odd == 2, odd == 1], 1).astype(np.int64)


def calibration_from_triplets(logits: np.ndarray, odd: np.ndarray) -> dict:
    """Calibration on the pairs the triplets order (closer = same, farther = different)."""
    x, y = logits.reshape(-1), closer_farther_labels(odd).reshape(-1)
    return fit_calibration(x, y, y, fitted_on="FEC closer/farther pairs of held-out triplets")


def thesis_pair_view(logits: np.ndarray, odd: np.ndarray, calibration: dict) -> dict:
    """Images 1-2 of each triplet, similar iff the answer is 3, as the thesis scored them, next to
    the majority-class rate of those same pairs (what always answering the commoner label gets)."""
    same = (odd == 3).astype(np.int64)
    p = calibrated(logits[:, 0], calibration)
    result = {"pairs": int(len(same)),
              "pair_accuracy": round(metrics.accuracy(p, same, calibration["threshold"]), 4),
              "majority_class_rate": round(float(max(same.mean(), 1 - same.mean())), 4)}
    if 0 < same.sum() < len(same):
        result["pair_auc"] = round(metrics.roc_auc(p, same), 4)
    return result


class TripletScores(NamedTuple):
    report: dict          # triplet accuracy by type (pair head and embedding), the thesis pairs
    logits: np.ndarray    # n x 3 pair-head logits of pairs 12, 13, 23
    odd: np.ndarray       # the raters' odd one of each triplet


def evaluate_triplets(model, view: View, triplets, cache: CropCache, device, calibration=None,
                      workers: int = 0) -> TripletScores:
    """Triplet accuracy (pair head and embedding) by type; with a calibration, the pair view too.

    triplets must be usable ones (clear majority, faces cached): see CropCache.usable.
    """
    faces = list(dict.fromkeys(f for t in triplets for f in t.faces))
    row = {f: i for i, f in enumerate(faces)}
    index = np.array([[row[f] for f in t.faces] for t in triplets], dtype=np.int64).reshape(-1, 3)
    dataset = Faces(faces, cache, eval_transform(view.input_size, view.grey))
    z = dataset_features(model, dataset, view, device, workers=workers)
    logits = triplet_logits(model, z, index, device)
    odd = np.array([t.majority for t in triplets], dtype=np.int64)
    kinds = [t.kind for t in triplets]
    report = {"triplet_accuracy": accuracy_by_type(odd_one_out(logits), odd, kinds),
              "triplet_accuracy_embedding": accuracy_by_type(odd_by_embedding(z, index), odd, kinds)}
    if calibration is not None and len(triplets):
        report["thesis_pairs"] = thesis_pair_view(logits, odd, calibration)
    return TripletScores(report, logits, odd)


def score_file(model, view: View, csv_path, cache: CropCache, device, calibration,
               min_agreement: int = 0, workers: int = 0) -> dict:
    """evaluate_triplets on an FEC CSV, with how many of its triplets could be scored."""
    triplets, report = read_triplets(csv_path)
    clear = [t for t in triplets if t.majority is not None and t.agreement >= min_agreement]
    usable = cache.usable(clear, min_agreement)
    result = evaluate_triplets(model, view, usable, cache, device, calibration, workers).report
    result["counts"] = {"listed": len(triplets), "malformed_rows": report.skipped,
                        "clear_majority": len(clear), "evaluated": len(usable)}
    return result


def format_report(result: dict) -> str:
    lines = []
    counts = result.get("counts")
    if counts:
        lines.append(f"evaluated {counts['evaluated']} of {counts['listed']} listed triplets "
                     f"({counts['clear_majority']} with a clear majority, {counts['evaluated']} of "
                     f"those with all three faces cached; {counts['malformed_rows']} malformed "
                     f"rows skipped)")
    for name, label in (("triplet_accuracy", "pair head (the app)"),
                        ("triplet_accuracy_embedding", "embedding distance (FECNet's rule)")):
        table = result[name]
        lines.append(f"triplet prediction accuracy, {label}:")
        for kind, row in table.items():
            acc = "n/a" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f} %"
            lines.append(f"  {kind:<20} {acc:>8}  ({row['triplets']} triplets)")
    lines.append(f"  reference: FECNet {100 * FECNET_ACCURACY:.1f} % (Vemulapalli & Agarwala, CVPR 2019)")
    pairs = result.get("thesis_pairs")
    if pairs:
        lines.append(f"thesis pair view (images 1-2, same iff answer 3): accuracy "
                     f"{100 * pairs['pair_accuracy']:.1f} % vs majority-class rate "
                     f"{100 * pairs['majority_class_rate']:.1f} % over {pairs['pairs']} pairs"
                     + (f"; AUC {pairs['pair_auc']:.3f}" if "pair_auc" in pairs else ""))
    return "\n".join(lines)
