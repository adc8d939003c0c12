"""FEC as a train.py data source: the usable triplets and their validation split, the training
set for each mode, its loss, the per-epoch score, calibration on held-out triplets, the test
file's score, and what the checkpoint records about the data (see fecsim.train.sources)."""
from __future__ import annotations

import torch

from ..data import train_transform
from ...errors import FecsimError
from ..loop import batch_loss
from ...view import Framing, View
from . import datasets
from .evaluate import calibration_from_triplets, evaluate_triplets, format_report, score_file
from .loss import triplet_and_pair_loss
from .reader import read_triplets
from ..config import TrainConfig

MODES = ("triplet", "pairs", "thesis")
DEFAULT_VAL_FRACTION = 0.005


class FecTriplets:
    device_batches = False
    class_names: list = []

    def __init__(self, train_csv, images, mode: str = "triplet", min_agreement: int = 0,
                 val_fraction: float = 0.0, seed: int = 0, log=print, config: TrainConfig | None = None):
        self.config = config
        if mode not in MODES:
            raise FecsimError(f"unknown fec_mode {mode!r}: {', '.join(MODES)}")
        self.train_csv, self.images, self.mode = str(train_csv), str(images), mode
        self.min_agreement = min_agreement
        self.crops = datasets.CropCache(images)
        triplets, self.report = read_triplets(train_csv)
        self.usable = self.crops.usable(triplets, min_agreement)
        log(f"{self.report.summary()}; {len(self.usable)} with a clear majority and all three "
            "faces cached")
        if len(self.usable) < 2:
            raise FecsimError(f"{len(self.usable)} usable FEC triplets in {train_csv} with crops in "
                              f"{images}: download the faces first (python -m fecsim.train.fec download)")
        # FEC has no validation split: hold out triplets for the per-epoch score and the final
        # calibration, sharing no face with training; the thesis split at random (its validation
        # shared faces with training), and so does its mode.
        fraction = val_fraction or DEFAULT_VAL_FRACTION
        if mode == "thesis":
            order = torch.randperm(len(self.usable), generator=torch.Generator().manual_seed(seed))
            n_val = max(1, int(len(order) * fraction))
            self.val = [self.usable[i] for i in order[:n_val].tolist()]
            self.train = [self.usable[i] for i in order[n_val:].tolist()]
            self.dropped = 0
        else:
            self.train, self.val, self.dropped = datasets.holdout_by_faces(self.usable, fraction, seed)
            if not self.train:
                raise FecsimError(f"every training triplet shares a face with the {len(self.val)} "
                                  f"held out for validation: lower val_fraction ({fraction})")
        log(f"{len(self.train)} training and {len(self.val)} validation triplets; {self.dropped} "
            "dropped for sharing a face with validation")

    def dataset(self, transform):
        if self.mode == "triplet":
            return datasets.TripletFaces(self.train, self.crops, transform)
        pairs = datasets.closer_farther_pairs if self.mode == "pairs" else datasets.thesis_pairs
        return datasets.PairFaces(pairs(self.train), self.crops, transform)

    @classmethod
    def from_config(cls, s: TrainConfig, log=print) -> "FecTriplets":
        source = cls(s.fec_train, s.fec_images, s.fec_mode, s.fec_min_agreement, s.val_fraction,
                     s.seed, log, s)
        source.train_set = source.dataset(train_transform(s.image_size, s.grey, s.thesis_augment))
        source.val_labels = source.val
        return source

    def batch(self, item, device) -> dict:
        return item

    def loss(self, model, batch):
        if self.mode != "triplet":
            return batch_loss(model, batch)
        loss, parts = triplet_and_pair_loss(model, batch, self.config.fec_pair_weight)
        if "a" in batch:   # extra labelled pairs
            extra_loss, extra_parts = batch_loss(model, {k: batch[k] for k in ("a", "b", "same")})
            loss, parts = loss + extra_loss, {**parts, **extra_parts}
        return loss, parts

    def validate(self, model, view: View, device) -> dict:
        result = evaluate_triplets(model, view, self.val, self.crops, device,
                                   workers=self.config.workers).report
        return {"val_triplet_acc": result["triplet_accuracy"]["all"]["accuracy"],
                "val_triplet_acc_embedding": result["triplet_accuracy_embedding"]["all"]["accuracy"]}

    def range_faces(self, n: int = 512):
        return None   # no int8 export for FEC models yet

    def calibrate(self, model, encoder, view: View, device) -> dict:
        """On the held-out triplets' closer/farther pairs."""
        scores = evaluate_triplets(model, view, self.val, self.crops, device, workers=self.config.workers)
        return calibration_from_triplets(scores.logits, scores.odd)

    def test_metrics(self, model, encoder, view: View, calibration: dict, device) -> dict:
        val = evaluate_triplets(model, view, self.val, self.crops, device, calibration,
                                self.config.workers).report
        metrics = {"fec_val": val}
        if self.config.fec_test:
            metrics["fec_test"] = score_file(model, view, self.config.fec_test, self.crops, device,
                                             calibration, self.min_agreement, self.config.workers)
        return metrics

    def framing(self) -> Framing:
        # The app frames a detected face the way the downloader framed FEC's boxes.
        return Framing(self.crops.settings["margin"], self.crops.settings.get("square", True), None)

    def record(self) -> dict:
        return {"name": "FEC", "train_csv": self.train_csv, "images": self.images,
                "crop_size": self.crops.settings["size"], "rows": self.report.rows,
                "malformed_rows": self.report.skipped, "usable_triplets": len(self.usable),
                "train_triplets": len(self.train), "val_triplets": len(self.val),
                "dropped_sharing_val_faces": self.dropped}

    def summary(self, metrics: dict) -> str:
        return format_report(metrics["fec_test"]) if "fec_test" in metrics else ""
