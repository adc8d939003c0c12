"""Distillation: the teacher's answers are the targets its weight says, and nothing else changes."""
import pytest
import torch

from fecsim import checkpoint
from fecsim.train.distill import Teacher
from fecsim.model import ModelConfig, SiameseResNet18
from fecsim.train.loop import batch_loss, in_batch_pair_loss

from conftest import TINY_META


def batch(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"images": torch.rand(n, 3, 48, 48, generator=g),
            "labels": torch.randint(0, 7, (n,), generator=g)}


def test_a_teacher_of_weight_zero_leaves_the_loss_as_it_was(random_checkpoint):
    torch.manual_seed(1)
    student = SiameseResNet18(ModelConfig(num_classes=7)).eval()
    b = batch()
    plain, _ = batch_loss(student, b, 1.0, 0.1)
    taught, _ = batch_loss(student, b, 1.0, 0.1, Teacher(random_checkpoint, "cpu", weight=0.0))
    assert torch.equal(plain, taught)
    half, _ = batch_loss(student, b, 1.0, 0.1, Teacher(random_checkpoint, "cpu", weight=0.5))
    assert not torch.equal(plain, half)


def test_a_student_answering_as_its_teacher_has_nothing_left_to_learn_from_it(random_checkpoint):
    """With weight 1 the targets are the teacher's own answers: at them the gradient vanishes,
    while the labels alone would still pull."""
    teacher = Teacher(random_checkpoint, "cpu", weight=1.0, temperature=2.0)
    b = batch()
    teacher_z = teacher.features(b["images"])
    z = teacher_z.clone().requires_grad_(True)
    in_batch_pair_loss(teacher.model, z, b["labels"], teacher, teacher_z).backward()
    assert z.grad.abs().max() < 1e-6
    z.grad = None
    in_batch_pair_loss(teacher.model, z, b["labels"]).backward()
    assert z.grad.abs().max() > 1e-4
    logits = teacher.model.classify(teacher_z)
    assert teacher.class_loss(logits, teacher_z) < 1e-6
    assert teacher.class_loss(logits.flip(-1), teacher_z) > 1e-3


def test_a_teacher_needs_a_classifier_and_a_weight_between_0_and_1(random_checkpoint, tmp_path):
    no_classes = checkpoint.save(tmp_path / "pairs-only.safetensors",
                                 SiameseResNet18(ModelConfig()).eval(), TINY_META)
    with pytest.raises(ValueError, match="classifier"):
        Teacher(no_classes, "cpu")
    with pytest.raises(ValueError, match="between 0 and 1"):
        Teacher(random_checkpoint, "cpu", weight=1.5)
