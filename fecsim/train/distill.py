"""A teacher for knowledge distillation: a trained fecsim checkpoint whose answers on each training
batch become soft targets beside the labels (Hinton et al., 2015).

FER2013's labels are noisy (people agree with them about 65 % of the time); a teacher's answers say
how alike two faces look and how much each looks like every expression, which a one-hot label
cannot. The teacher sees the very images the student sees, augmentation included, through its own
view (flip averaging), so each target fits its input ("consistent teaching", Beyer et al., 2022).
On the CPU the teacher's int8 encoder computes its features when it has one.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from .. import checkpoint
from ..scoring import uncalibrated
from ..view import features
from ..int8 import Int8Encoder


class Teacher:
    def __init__(self, path, device, weight: float = 0.5, temperature: float = 2.0):
        """weight: the share of the pair and class losses given to the teacher's answers (the rest
        to the labels); temperature: how much the teacher's class probabilities are softened."""
        if not 0 <= weight <= 1:
            raise ValueError(f"teacher weight {weight} is not between 0 and 1")
        self.model, self.meta = checkpoint.load(path, device)
        if self.model.classifier is None:
            raise ValueError(f"{path}: a teacher needs an expression classifier (num_classes > 0)")
        self.model.eval().requires_grad_(False)
        self.sha256 = checkpoint.sha256(path)   # recorded in the student's metadata
        self.weight, self.temperature = weight, temperature
        self.encoder = self.model
        if torch.device(device).type == "cpu":
            self.encoder = Int8Encoder.for_checkpoint(path, self.meta) or self.model

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's z for a training batch: its flip averaging, but not its zoom, which
        corrects whole faces, not the random crops training shows."""
        view = replace(self.meta.view, zoom=1.0)
        return features(self.encoder, images.float().contiguous(), view).to(images.device)

    @torch.no_grad()
    def pair_probabilities(self, z: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return uncalibrated(self.model.pair_logits(z[i], z[j]))

    def class_loss(self, student_logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL divergence to the teacher's softened class probabilities, scaled by T^2 so that its
        gradients keep their size whatever the temperature (Hinton et al.)."""
        t = self.temperature
        with torch.no_grad():
            target = F.softmax(self.model.classify(z).float() / t, dim=-1)
        return F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1), target,
                        reduction="batchmean") * t * t
