"""Data: labelled expression folders, the pairs and triplets drawn from their labels, and pair CSVs.

Labelled folders use the layout FER2013 users get from Kaggle: <root>/{train,val,test}/<label>/*.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from ..images import load_image


# The training augmentation's ranges, shared by the PIL pipeline below and augment.augment_batch.
AUGMENTATION = dict(scale=(0.75, 1.0), ratio=(0.9, 1.1), flip_p=0.5, degrees=12.0, translate=0.05,
                    brightness=0.35, contrast=0.35, erase_p=0.25, erase_scale=(0.02, 0.12),
                    erase_ratio=(0.3, 3.3))


def train_transform(size: int, grey: bool = True, thesis: bool = False):
    """Augmentations. The thesis used RandomResizedCrop + RandomHorizontalFlip only."""
    if thesis:
        steps = [v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()]
    else:
        # Framing jitter matters: detected crops from photos never sit exactly like FER2013's.
        a = AUGMENTATION
        steps = [v2.RandomResizedCrop(size, scale=a["scale"], ratio=a["ratio"]),
                 v2.RandomHorizontalFlip(a["flip_p"]),
                 v2.RandomAffine(degrees=a["degrees"], translate=(a["translate"], a["translate"])),
                 v2.ColorJitter(brightness=a["brightness"], contrast=a["contrast"])]
    head = [v2.Grayscale(num_output_channels=3)] if grey else []
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if not thesis:
        tail.append(v2.RandomErasing(p=a["erase_p"], scale=a["erase_scale"], ratio=a["erase_ratio"]))
    return v2.Compose(head + steps + tail)


def eval_transform(size: int, grey: bool = True):
    head = [v2.Grayscale(num_output_channels=3)] if grey else []
    return v2.Compose(head + [v2.Resize((size, size), antialias=True),
                              v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def labelled_folder(root, transform=None) -> datasets.ImageFolder:
    """One split of a labelled-folder dataset; images decoded through fecsim's safe loader."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected <root>/<label>/<images>)")
    return datasets.ImageFolder(str(root), transform=transform, loader=load_image)


def expression_split(root, transform=None):
    """One split of expression data: vote-labelled (labels.csv, FER+) or one folder per label."""
    return VoteFolder(root, transform) if is_vote_folder(root) else labelled_folder(root, transform)


def targets_of(split) -> torch.Tensor:
    """What training aims at: the vote distributions of a vote-labelled split, else the labels."""
    return split.votes if isinstance(split, VoteFolder) else torch.as_tensor(split.targets)


def folder_tensor(root, size: int, grey: bool = True, workers: int = 0):
    """Every image of a split decoded once: (uint8 N x C x H x W, targets_of(split), class names).

    For augment.augment_batch, which works on the training device. Images keep their own size when
    they all share one (FER2013: 48 px), so the augmentation resamples them once, as the PIL
    pipeline does; otherwise each is resized to size x size. Grey images keep one channel (C = 1).
    """
    head = [v2.Grayscale(num_output_channels=1)] if grey else [v2.RGB()]
    # numpy arrays travel back from loader processes by pipe; tensors would each hold a descriptor.
    folder = expression_split(root, v2.Compose(head + [np.array]))
    loader = DataLoader(folder, batch_size=256, num_workers=workers, collate_fn=list)
    images = [torch.from_numpy(a.reshape(*a.shape[:2], -1)).permute(2, 0, 1)
              for batch in loader for a, _ in batch]
    if len({tuple(i.shape) for i in images}) > 1:
        images = [v2.functional.resize(i, [size, size], antialias=True) for i in images]
    return torch.stack(images), targets_of(folder), folder.classes


def sample_pairs(labels, n: int, seed: int, groups=None) -> np.ndarray:
    """n pairs (i, j, same), half with the same label and half different, fixed by seed.
    groups (e.g. the person in each photo): the two faces of a pair come from different groups."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        same = len(rows) % 2 == 0
        i = int(rng.integers(len(labels)))
        pool = np.flatnonzero(((labels == labels[i]) == same) & (groups != groups[i]))
        if len(pool) == 0:
            continue
        rows.append((i, int(rng.choice(pool)), int(same)))
    return np.array(rows, dtype=np.int64)


def sample_triplets(labels, n: int, seed: int, groups=None) -> np.ndarray:
    """n triplets (i, j, k, odd): two share a label, the odd one (1, 2 or 3) has another.
    groups (e.g. the person in each photo): the three faces come from three different groups."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        anchor = int(rng.integers(len(labels)))
        mates = np.flatnonzero((labels == labels[anchor]) & (groups != groups[anchor]))
        if len(mates) == 0:
            continue
        mate = int(rng.choice(mates))
        odds = np.flatnonzero((labels != labels[anchor]) & (groups != groups[anchor])
                              & (groups != groups[mate]))
        if len(odds) == 0:
            continue
        odd_image = int(rng.choice(odds))
        odd = int(rng.integers(3)) + 1
        same_pair = [anchor, mate]
        order = same_pair[: odd - 1] + [odd_image] + same_pair[odd - 1:]
        rows.append((*order, odd))
    return np.array(rows, dtype=np.int64)


PAIR_COLUMNS = ("a", "b", "same")


class PairsCSV(Dataset):
    """Labelled pairs of face crops from a CSV with columns a, b, same (0/1).

    Paths may be absolute or relative to the CSV's folder. This is how the app's flagged
    predictions come back as training data (`python -m fecsim export-flags`).
    """

    def __init__(self, path, transform):
        self.path = Path(path)
        self.transform = transform
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            missing = set(PAIR_COLUMNS) - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{self.path}: missing columns {sorted(missing)}")
            self.rows = [(self._resolve(r["a"]), self._resolve(r["b"]), int(r["same"]))
                         for r in reader]

    def _resolve(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.path.parent / p

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        a, b, same = self.rows[index]
        return self.transform(load_image(a)), self.transform(load_image(b)), torch.tensor(float(same))


# FER+'s expressions, in the order of its labels.csv columns; "unknown" and "NF" (not a face) follow.
VOTE_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_DISCARD = ("unknown", "NF")


class VoteFolder(Dataset):
    """A split whose faces were each voted on by several raters (FER+): <root>/labels.csv of vote
    counts (image, one column per expression, unknown, NF) beside the images.

    Items are (image, votes): votes is the face's distribution over the expressions (float, sums to
    1). Faces that most raters called "unknown" or "not a face" are dropped and counted in
    `dropped`. `targets` holds each face's majority expression (ties: the first column), `agreement`
    the number of raters behind it.
    """

    def __init__(self, root, transform=None):
        self.root = Path(root)
        path = self.root / "labels.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (a vote-labelled split needs labels.csv)")
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"image", *VOTE_CLASSES, *VOTE_DISCARD} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            rows = [(r["image"], [int(r[c]) for c in VOTE_CLASSES + VOTE_DISCARD]) for r in reader]
        counts = np.array([c for _, c in rows], dtype=np.float32).reshape(-1, len(VOTE_CLASSES) + 2)
        expression_votes, total = counts[:, : len(VOTE_CLASSES)], counts.sum(1)
        keep = expression_votes.sum(1) > total / 2   # most raters saw one of the expressions
        self.dropped = int((~keep).sum())
        self.files = [self.root / name for (name, _), k in zip(rows, keep) if k]
        votes = expression_votes[keep]
        self.votes = torch.from_numpy(votes / votes.sum(1, keepdims=True))
        self.targets = votes.argmax(1).tolist()
        self.agreement = votes.max(1).astype(int).tolist()
        self.classes = list(VOTE_CLASSES)
        self.transform = transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        image = load_image(self.files[index])
        return (self.transform(image) if self.transform else image), self.votes[index]


def dataset_files(dataset) -> list:
    """The image file of each item of a labelled split (or a Subset of one), in order."""
    if isinstance(dataset, Subset):
        files = dataset_files(dataset.dataset)
        return [files[i] for i in dataset.indices]
    if isinstance(dataset, VoteFolder):
        return list(dataset.files)
    return [path for path, _ in dataset.samples]


def is_vote_folder(root) -> bool:
    """A split with labels.csv of votes (FER+), rather than one folder per label (FER2013)."""
    return (Path(root) / "labels.csv").is_file()


def class_balance_weights(targets, power: float) -> torch.Tensor:
    """Per-sample weights that draw each class in proportion to its count ** (1 - power):
    0 keeps the data's mix, 1 draws every class equally often (for a WeightedRandomSampler)."""
    targets = torch.as_tensor(targets)
    counts = torch.bincount(targets).float().clamp(min=1)
    return counts[targets] ** -power
