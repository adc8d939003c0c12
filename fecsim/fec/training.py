"""FEC in train.py: the usable triplets and their validation split, the training set for each
mode, the per-epoch score, and the end of a run (calibration, the test file's score, metadata)."""
from __future__ import annotations

import torch

from ..errors import FecsimError
from . import datasets
from .evaluate import calibration_from_triplets, evaluate_triplets, score_file, thesis_pair_view
from .reader import read_triplets

MODES = ("triplet", "pairs", "thesis")
DEFAULT_VAL_FRACTION = 0.005


class FecRun:
    def __init__(self, train_csv, images, mode: str = "triplet", min_agreement: int = 0,
                 val_fraction: float = 0.0, seed: int = 0, log=print):
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
                              f"{images}: download the faces first (python -m fecsim.fec download)")
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

    def validate(self, model, view: dict, device, workers: int = 0) -> dict:
        result, _, _ = evaluate_triplets(model, view, self.val, self.crops, device, workers=workers)
        return {"val_triplet_acc": result["triplet_accuracy"]["all"]["accuracy"],
                "val_triplet_acc_embedding": result["triplet_accuracy_embedding"]["all"]["accuracy"]}

    def finish(self, model, view: dict, device, test_csv: str = "", workers: int = 0) -> dict:
        """The checkpoint metadata FEC decides: framing, calibration on the held-out triplets'
        closer/farther pairs, data counts, validation and (with test_csv) test scores."""
        val_result, logits, odd = evaluate_triplets(model, view, self.val, self.crops, device,
                                                    workers=workers)
        calibration = calibration_from_triplets(logits, odd)
        val_result["thesis_pairs"] = thesis_pair_view(logits, odd, calibration)
        meta = {
            # The app frames a detected face the way the downloader framed FEC's boxes.
            "face": {"margin": self.crops.settings["margin"],
                     "square": self.crops.settings.get("square", True), "source_size": None},
            "calibration": calibration,
            "data": {"name": "FEC", "train_csv": self.train_csv, "images": self.images,
                     "crop_size": self.crops.settings["size"], "rows": self.report.rows,
                     "malformed_rows": self.report.skipped, "usable_triplets": len(self.usable),
                     "train_triplets": len(self.train), "val_triplets": len(self.val),
                     "dropped_sharing_val_faces": self.dropped},
            "metrics": {"fec_val": val_result},
        }
        if test_csv:
            meta["metrics"]["fec_test"] = score_file(model, view, test_csv, self.crops, device,
                                                     calibration, self.min_agreement, workers)
        return meta
