"""Training data from downloaded FEC crops: triplets whose three faces are all cached, and pairs.

Two pair views of a triplet whose majority names the odd one out:
- thesis_pairs: images 1 and 2 only, similar when the answer is 3, different when it is 1 or 2
  (the 2023 thesis);
- closer_farther_pairs: every pair the triplet orders: the two images that are not the odd one form
  the closer pair (1), each of them with the odd one a farther pair (0). Three labelled pairs per
  triplet instead of one, and none of them ambiguous about which pair is meant.
"""
from __future__ import annotations

import os
import random
from collections import defaultdict, deque
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...images import load_image
from .download import CROPS, crop_path, face_key, read_settings
from .reader import FaceRef, Triplet


class CropCache:
    """The downloader's output folder: which faces are cached, and how they were cropped."""

    def __init__(self, root):
        self.root = Path(root)
        self.settings = read_settings(self.root)
        crops = self.root / CROPS
        # One directory scan instead of a stat per face: the train file names ~1.3M faces.
        self.keys = {entry.name[:-4] for sub in (os.scandir(crops) if crops.is_dir() else ())
                     if sub.is_dir() for entry in os.scandir(sub.path) if entry.name.endswith(".jpg")}

    def __contains__(self, face: FaceRef) -> bool:
        return face_key(face) in self.keys

    def path(self, face: FaceRef) -> Path:
        return crop_path(self.root, face)

    def load(self, face: FaceRef):
        return load_image(self.path(face))

    def usable(self, triplets, min_agreement: int = 0) -> list[Triplet]:
        """Triplets with a clear majority (no tie for the top answer, at least min_agreement raters
        behind it) and all three faces cached."""
        return [t for t in triplets
                if t.majority is not None and t.agreement >= min_agreement
                and all(f in self for f in t.faces)]


def holdout_by_faces(triplets, fraction: float, seed: int = 0):
    """(train, validation, dropped): validation triplets share no face with training ones.

    FEC reuses each face in several triplets, so a plain random split would score the model on
    faces it trained on. Validation grows as a connected block of the face-sharing graph (from
    random seeds, breadth first), which keeps its distinct faces few; training triplets that
    touch any of them are dropped rather than leaked.
    """
    triplets = list(triplets)
    target = max(1, round(len(triplets) * fraction))
    by_face = defaultdict(list)
    for i, t in enumerate(triplets):
        for f in t.faces:
            by_face[f].append(i)
    order = list(range(len(triplets)))
    random.Random(seed).shuffle(order)
    chosen, faces, queue = set(), set(), deque()
    for start in order:
        if len(chosen) >= target:
            break
        queue.append(start)
        while queue and len(chosen) < target:
            i = queue.popleft()
            if i in chosen:
                continue
            chosen.add(i)
            for f in triplets[i].faces:
                if f not in faces:
                    faces.add(f)
                    queue.extend(by_face[f])
    validation = [triplets[i] for i in sorted(chosen)]
    rest = [t for i, t in enumerate(triplets) if i not in chosen]
    train = [t for t in rest if not any(f in faces for f in t.faces)]
    return train, validation, len(rest) - len(train)


def split_odd(triplet: Triplet) -> tuple[FaceRef, FaceRef, FaceRef]:
    """(first of the closer pair, second of the closer pair, the odd one) by the majority answer."""
    odd = triplet.majority
    if odd is None:
        raise ValueError(f"line {triplet.line}: no majority answer")
    closer = [f for i, f in enumerate(triplet.faces, 1) if i != odd]
    return closer[0], closer[1], triplet.faces[odd - 1]


def thesis_pairs(triplets) -> list[tuple[FaceRef, FaceRef, float]]:
    return [(t.faces[0], t.faces[1], 1.0 if t.majority == 3 else 0.0) for t in triplets]


def closer_farther_pairs(triplets) -> list[tuple[FaceRef, FaceRef, float]]:
    pairs = []
    for t in triplets:
        a, b, odd = split_odd(t)
        pairs += [(a, b, 1.0), (a, odd, 0.0), (b, odd, 0.0)]
    return pairs


class TripletFaces(Dataset):
    """Items {anchor, positive, negative, margin}: the closer pair (in random order) and the odd one,
    with FECNet's margin for the triplet's type."""

    def __init__(self, triplets, cache: CropCache, transform, shuffle_pair: bool = True):
        self.items = [(*split_odd(t), t.margin) for t in triplets]
        self.cache, self.transform, self.shuffle_pair = cache, transform, shuffle_pair

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        a, b, odd, margin = self.items[index]
        if self.shuffle_pair and torch.rand(()) < 0.5:
            a, b = b, a
        return {"anchor": self._image(a), "positive": self._image(b),
                "negative": self._image(odd), "margin": torch.tensor(margin)}

    def _image(self, face):
        return self.transform(self.cache.load(face))


class PairFaces(Dataset):
    """Items {a, b, same} for BCE from a list of (face, face, same)."""

    def __init__(self, pairs, cache: CropCache, transform):
        self.pairs, self.cache, self.transform = pairs, cache, transform

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        a, b, same = self.pairs[index]
        return {"a": self.transform(self.cache.load(a)), "b": self.transform(self.cache.load(b)),
                "same": torch.tensor(same)}


class Faces(Dataset):
    """Single cached faces (for feature extraction)."""

    def __init__(self, faces, cache: CropCache, transform):
        self.faces, self.cache, self.transform = faces, cache, transform

    def __len__(self):
        return len(self.faces)

    def __getitem__(self, index):
        return self.transform(self.cache.load(self.faces[index]))
