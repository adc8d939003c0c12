"""Training data sources for train.py. Each supplies its training set and batches, its loss, its
validation, its calibration, its test figures and the facts about itself the checkpoint records:

- Folders: <data>/{train,val,test}, one folder per expression (FER2013) or images beside
  labels.csv of rater votes (FER+);
- fec.source.FecTriplets: Google's FEC triplets;
- ExtraPairs: labelled pairs of crops (the app's exported flags), mixed into either one's batches.

Each source takes the run's TrainConfig and reads the settings it needs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset, TensorDataset

from . import evaluate
from .augment import augment_batch
from .data import (PairsCSV, VoteFolder, dataset_files, eval_transform, expression_split,
                   folder_tensor, is_vote_folder, train_transform)
from .loop import batch_loss
from ..view import Framing, View
from .config import TrainConfig

KNOWN_SOURCES = {
    "fer2013": ("FER2013 (Goodfellow et al., ICML 2013 challenges in representation learning; "
                "Kaggle), official train/PublicTest/PrivateTest split, research use"),
    "ferplus": ("FER+ (Barsoum et al., ICMI 2016, arXiv 1608.01041): FER2013's faces, 10 crowd "
                "votes each over 8 expressions; labels MIT (Microsoft), images FER2013's (research "
                "use); FER2013's official split"),
}


class Folders:
    device_batches = False   # set when augment=device: batches are index ranges of a tensor

    def __init__(self, config: TrainConfig, teacher=None):
        self.config, self.root, self.teacher = config, Path(config.data), teacher
        s = config
        size, grey = s.image_size, s.grey
        if s.augment == "device":   # decoded once; batches are augmented on the device
            decoded, targets, self.class_names = folder_tensor(self.root / "train", size, grey,
                                                               s.workers)
            if targets.dim() == 2 and s.vote_targets == "majority":
                targets = targets.argmax(1)
            train_set = TensorDataset(decoded, targets)
            # the majority label of a vote distribution
            self.train_targets = (targets.argmax(1) if targets.dim() == 2 else targets).tolist()
            self.device_batches = True
        else:
            train_set = expression_split(self.root / "train",
                                         train_transform(size, grey, s.thesis_augment))
            self.class_names, self.train_targets = train_set.classes, train_set.targets
        self.val_folder = None
        if s.val_fraction > 0:
            order = torch.randperm(len(train_set),
                                   generator=torch.Generator().manual_seed(s.seed)).tolist()
            n_val = int(len(order) * s.val_fraction)
            self.val_images = Subset(expression_split(self.root / "train", eval_transform(size, grey)),
                                     order[:n_val])
            self.val_labels = [self.train_targets[i] for i in order[:n_val]]
            self.train_set = Subset(train_set, order[n_val:])
        else:
            self.val_folder = expression_split(self.root / "val", eval_transform(size, grey))
            self.val_images, self.val_labels = self.val_folder, self.val_folder.targets
            if s.min_agreement:
                keep = evaluate.clear_majority(self.val_folder, s.min_agreement)
                self.val_images = Subset(self.val_folder, keep)
                self.val_labels = [self.val_labels[i] for i in keep]
            self.train_set = train_set

    def batch(self, item, device) -> dict:
        if self.device_batches:
            return {"images": augment_batch(item[0].to(device, non_blocking=True),
                                            self.config.image_size, domain=self.config.domain_augment),
                    "labels": item[1]}
        return {"images": item[0], "labels": item[1]}

    def loss(self, model, batch):
        return batch_loss(model, batch, self.config.class_loss_weight, self.config.label_smoothing,
                          self.teacher)

    def validate(self, model, view: View, device) -> dict:
        s = self.config
        z = evaluate.dataset_features(model, self.val_images, view, device, workers=s.workers)
        labels = np.asarray(self.val_labels)
        cal = evaluate.calibrate(model, z, labels, s.val_pairs, s.eval_seed, device)
        res = {"val_auc": evaluate.score(model, z, labels, cal, s.val_pairs, 0, s.eval_seed + 1,
                                         device)["pair_auc"]}
        if model.classifier is not None:
            predicted = model.classify(z.to(device)).argmax(1).cpu().numpy()
            res["val_class_acc"] = round(float((predicted == labels).mean()), 4)
        return res

    def range_faces(self, n: int = 512) -> torch.Tensor:
        """Training faces as evaluation sees them, for the int8 encoder's activation ranges."""
        faces = expression_split(self.root / "train", eval_transform(self.config.image_size, self.config.grey))
        pick = torch.randperm(len(faces), generator=torch.Generator().manual_seed(self.config.seed))[:n]
        return torch.stack([faces[i][0] for i in pick.tolist()])

    def calibrate(self, model, encoder, view: View, device) -> dict:
        """On validation pairs; vote-labelled: on every validation face (the app meets unclear
        faces too), to rater agreement."""
        s, votes = self.config, getattr(self.val_folder, "votes", None)
        images, labels = ((self.val_folder, self.val_folder.targets) if votes is not None
                          else (self.val_images, self.val_labels))
        z = evaluate.dataset_features(encoder, images, view, device, workers=s.workers, model=model)
        return evaluate.calibrate(model, z, np.asarray(labels), s.val_pairs, s.eval_seed, device,
                                  None if votes is None else votes.numpy())

    def test_metrics(self, model, encoder, view: View, calibration: dict, device) -> dict:
        s = self.config
        if not (s.score_test and (self.root / "test").is_dir()):
            return {}
        return {"test": evaluate.evaluate_folder(model, view, calibration, self.root / "test",
                                                 s.test_pairs, s.test_triplets, s.eval_seed,
                                                 device, encoder)}

    def framing(self) -> Framing:
        """The face margin train.py is given, and the training faces' own size when they share
        one (a detected face goes through it, so detail and blur match them)."""
        return Framing(self.config.face_margin, True, _common_size(self.root / "train"),
                       self.config.align_faces)

    def record(self) -> dict:
        s = self.config
        data = {"name": self.root.name,
                "source": s.data_source or KNOWN_SOURCES.get(self.root.name, ""),
                "path": str(self.root), "classes": self.class_names,
                "images": {"train": len(self.train_set), "validation": len(self.val_labels)}}
        if is_vote_folder(self.root / "train"):   # faces most raters could not read, left out
            data["dropped_unreadable"] = {split: VoteFolder(self.root / split).dropped
                                          for split in ("train", "val", "test")
                                          if (self.root / split).is_dir()}
            data["validation_min_agreement"] = s.min_agreement
        return data

    def summary(self, metrics: dict) -> str:
        return json.dumps({k: v for k, v in metrics.get("test", {}).items()
                           if k != "reliability"}, indent=2)


def _common_size(split) -> int | None:
    """The side of a split's images when all are the same square size, else None."""
    sizes = set()
    for path in dataset_files(expression_split(split)):
        with Image.open(path) as image:   # the header only
            sizes.add(image.size)
        if len(sizes) > 1:
            return None
    size = sizes.pop() if sizes else (0, 1)
    return size[0] if size[0] == size[1] else None


class ExtraPairs:
    """Labelled pairs of face crops (a, b, same), drawn beside every batch of the main source."""

    def __init__(self, path, transform, batch_size: int):
        self.loader = DataLoader(PairsCSV(path, transform), batch_size=batch_size, shuffle=True,
                                 num_workers=0)
        self._iter = None

    def add_to(self, batch: dict) -> dict:
        try:
            a, b, same = next(self._iter)
        except (StopIteration, TypeError):   # used up, or not started
            self._iter = iter(self.loader)
            a, b, same = next(self._iter)
        return dict(batch, a=a, b=b, same=same)

    def restart(self) -> None:
        self._iter = iter(self.loader)
