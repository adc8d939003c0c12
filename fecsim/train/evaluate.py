"""Scoring a model: features of a dataset, pair logits, the calibration fit, and the figures of a
labelled or vote-labelled split (balanced pairs and triplets drawn from a fixed seed). FEC's
triplet files are scored in fec/evaluate.py with the same pieces."""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from .. import metrics
from ..errors import FecsimError
from ..geometry import LANDMARKER, FaceGeometry
from ..images import load_image
from ..inference import geometry_columns
from ..model import SAME_EXPRESSION
from .data import (VoteFolder, dataset_files, eval_transform, expression_split, sample_pairs,
                   sample_triplets)
from ..scoring import (calibrated, fit_calibration, fit_options, indexed_pair_logits,
                       odd_one_out, triplet_logits, vote_target)
from ..view import View, features


@torch.no_grad()
def dataset_features(encoder, dataset, view: View, device, batch_size: int = 256,
                     workers: int = 0, model=None) -> torch.Tensor:
    """z of every face of a dataset, in order; its items are images or (image, label).
    encoder: the model, or its int8 copy; model: the model, when it reads a geometry view too
    (its columns are appended, read from the dataset's image files)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = [features(encoder, (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device),
                    view).float().cpu() for batch in loader]
    z = torch.cat(out) if out else torch.zeros(0, 1)
    model = model if model is not None else encoder
    if getattr(model, "geometry", None) is None:
        return z
    return torch.cat([z, dataset_geometry(dataset)], 1)


def dataset_geometry(dataset) -> torch.Tensor:
    """The geometry view's columns (inference.geometry_columns) of every face of a split: each
    image is a whole face, as in FER, read by the landmarker."""
    return _geometry_of_files(tuple(str(f) for f in dataset_files(dataset)))


@functools.lru_cache(maxsize=4)   # a split's geometry serves validation, calibration and export
def _geometry_of_files(files: tuple) -> torch.Tensor:
    reader = FaceGeometry.available()
    if reader is None:
        raise FecsimError("this model reads a geometry view, which needs mediapipe and "
                          f"{LANDMARKER.name}: pip install -r requirements.txt")
    with ThreadPoolExecutor(2) as pool:   # the landmarker's graph runs outside the GIL
        rows = list(pool.map(lambda f: reader(load_image(f)), files, chunksize=64))
    return geometry_columns(rows)


def calibrate(model, z, labels, n_pairs: int, seed: int, device, votes=None) -> dict:
    """Calibration on balanced pairs of a labelled split. votes (N x C vote distributions): fit
    the probability to the two faces' votes (vote_target) rather than to whether the majority
    labels agree. A model scoring pairs by their expressions turns its verdict at 0.5."""
    pairs = sample_pairs(labels, n_pairs, seed)
    logits = indexed_pair_logits(model, z, pairs[:, 0], pairs[:, 1], device)
    if votes is None:
        target, name = pairs[:, 2], "same label"
    else:
        target_of, name = vote_target(model)
        target = target_of(votes[pairs[:, 0]], votes[pairs[:, 1]])
    return fit_calibration(logits, target, pairs[:, 2], seed=seed, target=name,
                           **fit_options(model))


def score(model, z, labels, calibration: dict, n_pairs: int, n_triplets: int, seed: int,
          device, intervals: bool = False, names=None) -> dict:
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
        triplets = sample_triplets(labels, n_triplets, seed)
        right = triplet_accuracy(model, z, triplets, device)
        result.update(triplets=n_triplets, triplet_accuracy=round(float(right.mean()), 4))
        if names is not None:
            result["triplet_accuracy_by_shared_expression"] = by_shared_expression(
                right, triplets, np.asarray(names)[labels])
        if intervals:
            result["triplet_accuracy_interval"] = _rounded(metrics.bootstrap_interval(np.mean, right))
    return result


def by_shared_expression(right, triplets, labels) -> dict:
    """Triplet accuracy by the expression the triplet's pair shares (labels: names, per face)."""
    shared = labels[np.where(triplets[:, 3] == 1, triplets[:, 1], triplets[:, 0])]
    return {str(label): {"triplets": int((shared == label).sum()),
                         "accuracy": round(float(right[shared == label].mean()), 4)}
            for label in sorted(set(shared))}


def read_as(labels, read) -> dict:
    """The classifier's confusion: for each label, the share of its faces read as each class."""
    labels, read = np.asarray(labels), np.asarray(read)
    return {str(label): {str(name): round(float((read[labels == label] == name).mean()), 3)
                         for name in sorted(set(read[labels == label]))}
            for label in sorted(set(labels))}


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
    z = dataset_features(encoder or model, dataset, view, device, model=model)
    labels, cal = np.asarray(dataset.targets), calibration
    if not isinstance(dataset, VoteFolder):
        return score(model, z, labels, cal, n_pairs, n_triplets, seed, device, intervals=True)
    clear = clear_majority(dataset, CLEAR_VOTES, clear_min_faces)
    votes = dataset.votes.numpy()
    triplets = graded_triplets(votes, n_triplets, seed)
    right = triplet_accuracy(model, z, triplets, device)
    pairs = sample_pairs(labels, n_pairs, seed)
    p = calibrated(indexed_pair_logits(model, z, pairs[:, 0], pairs[:, 1], device), cal)
    target, target_name = vote_target(model)
    ece, table = metrics.reliability(p, target(votes[pairs[:, 0]], votes[pairs[:, 1]]))
    expressions = sorted({dataset.classes[labels[i]] for i in clear})
    names = np.asarray(dataset.classes)
    read = names[model.classify(z[clear].to(device)).argmax(1).cpu().numpy()] if clear else []
    return {
        "clear_majority": dict(score(model, z[clear], labels[clear], cal, n_pairs, n_triplets, seed,
                                     device, intervals=True, names=names)
                               if len(expressions) > 1 else {},
                               faces=len(clear), min_votes=CLEAR_VOTES, min_faces=clear_min_faces,
                               expressions=expressions, read_as=read_as(names[labels[clear]], read)),
        "majority": dict(score(model, z, labels, cal, n_pairs, n_triplets, seed, device,
                               intervals=True), faces=len(labels)),
        "graded_triplets": {"triplets": len(triplets), "accuracy": round(float(right.mean()), 4),
                            "interval": _rounded(metrics.bootstrap_interval(np.mean, right))},
        "agreement_calibration": {"pairs": n_pairs, "target": target_name, "ece": round(ece, 4),
                                  "reliability": table},
        "dropped_unreadable": dataset.dropped,
    }


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def person_of(path) -> str:
    """The person in a photo named like LFW's (George_W_Bush_0012.jpg -> George_W_Bush)."""
    stem = Path(path).stem
    head, _, number = stem.rpartition("_")
    return head if head and number.isdigit() else stem


def evaluate_photos(comparer, root, n_pairs=1000, n_triplets=1000, seed=0) -> dict:
    """Figures on photos in <root>/<label>/ through the app's own path: detection, alignment, crop
    and each view, as users' photos go. Pairs and triplets are drawn across different people
    (person_of each file name), so a face never meets the same person's other photo. Labels are
    read as the model's expressions where they name one (angry -> anger). Also the classifier's
    confusion: for each label, the share of its photos read as each expression."""
    root = Path(root)
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in PHOTO_SUFFIXES)
    found = list(comparer.detect_pool.map(lambda f: _face_or_none(comparer, f), files))
    kept = [i for i, face in enumerate(found) if face is not None]
    if not kept:
        raise FecsimError(source=str(root), reason="no face found in any photo of <root>/<label>/")
    names = comparer.class_names
    labels = np.array([SAME_EXPRESSION.get(files[i].parent.name, files[i].parent.name)
                       for i in kept])
    people = np.array([person_of(files[i]) for i in kept])
    z = torch.cat([comparer.features([found[i] for i in kept[k:k + 256]]).cpu()
                   for k in range(0, len(kept), 256)])
    p_pairs = sample_pairs(labels, n_pairs, seed, groups=people)
    p = comparer.pair_probabilities(z[p_pairs[:, 0]], z[p_pairs[:, 1]])
    same = p_pairs[:, 2]
    triplets = sample_triplets(labels, n_triplets, seed, groups=people)
    _, odd = comparer.triplet_probabilities(*(z[triplets[:, k]] for k in range(3)))
    right = odd == triplets[:, 3]
    read = np.array(names)[comparer.model.classify(z.to(comparer.device)).argmax(1).cpu().numpy()]
    threshold = comparer.threshold
    return {
        "photos": len(files), "no_face": len(files) - len(kept), "people": len(set(people)),
        "pairs": n_pairs, "pair_auc": round(metrics.roc_auc(p, same), 4),
        "pair_auc_interval": _rounded(metrics.bootstrap_interval(metrics.roc_auc, p, same)),
        "pair_accuracy": round(metrics.accuracy(p, same, threshold), 4),
        "triplets": n_triplets, "triplet_accuracy": round(float(right.mean()), 4),
        "triplet_accuracy_interval": _rounded(metrics.bootstrap_interval(np.mean, right)),
        "triplet_accuracy_by_shared_expression": by_shared_expression(right, triplets, labels),
        "read_as": read_as(labels, read),
        "geometry_found": _geometry_share(found, kept),
    }


def _face_or_none(comparer, path):
    try:
        return comparer.face_with_geometry(str(path))
    except FecsimError:
        return None


def _geometry_share(found, kept):
    with_geometry = [found[i].blendshapes is not None for i in kept]
    return round(float(np.mean(with_geometry)), 4) if with_geometry else 0.0


def self_pairs(comparer, root, per_expression: int = 25, seed: int = 0) -> dict:
    """P(same) of a face against itself and against its mirror image, through the app's path
    (the split's faces are crops: no detection), for per_expression clear-majority faces of each
    expression: a perfect copy should read as one, whatever the expression."""
    split = expression_split(root)
    rng = np.random.default_rng(seed)
    labels = np.asarray(split.targets)
    clear = np.asarray(clear_majority(split, CLEAR_VOTES)) if isinstance(split, VoteFolder) \
        else np.arange(len(labels))
    files, result = dataset_files(split), {}
    for k, name in enumerate(split.classes):
        faces = clear[labels[clear] == k]
        if len(faces) < per_expression:
            continue
        itself, mirror, same = [], [], 0
        for i in rng.choice(faces, per_expression, replace=False):
            image = load_image(files[i])
            itself.append(comparer.compare(image, image, assume_cropped=True).probability)
            copy = comparer.compare(image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                    assume_cropped=True)
            mirror.append(copy.probability)
            same += copy.same + comparer.compare(image, image, assume_cropped=True).same
        result[name] = {"faces": per_expression, "itself": round(float(np.mean(itself)), 4),
                        "mirror": round(float(np.mean(mirror)), 4),
                        "lowest": round(float(min(itself + mirror)), 4),
                        "verdict_same": same / (2 * per_expression)}
    return result

