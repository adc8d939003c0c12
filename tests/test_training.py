"""Training: the loss falls on generated data, a run resumes, train.py exports a usable model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fecsim import ExpressionComparer, checkpoint
from fecsim.train.data import eval_transform, labelled_folder
from fecsim.int8 import Int8Encoder
from fecsim.model import ModelConfig, SiameseResNet18
from fecsim.train.loop import batch_loss, fit

ROOT = Path(__file__).resolve().parent.parent


def make_folders(root: Path, per_class: int = 12) -> Path:
    """Three 'expressions' a network can tell apart: a bright band at the top, middle or bottom."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in range(3):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (rng.random((48, 48)) * 80).astype(np.uint8)
                pixels[c * 16:(c + 1) * 16] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_folders(tmp_path_factory.mktemp("labelled"))


def run_train(folders, *settings):
    """train.py on the generated folders, small and on one thread, without the int8 export (one
    test asks for it); later settings win."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"--data={folders}", "--epochs=1", "--batch_size=12",
         "--workers=0", "--val_pairs=60", "--test_pairs=40", "--test_triplets=30", "--int8=false",
         *settings],
        cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=600)


def small_run(folders, run_dir, epochs):
    torch.manual_seed(0)
    data = labelled_folder(folders / "train", eval_transform(48))
    model = SiameseResNet18(ModelConfig(num_classes=3, embed_dim=16, pair_hidden=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(data, batch_size=12, shuffle=True)

    def batches(epoch):
        torch.manual_seed(epoch)
        return ({"images": x, "labels": y} for x, y in loader)

    return fit(model, opt, None, batches, epochs, run_dir, torch.device("cpu"),
               loss_fn=batch_loss, log=lambda *a: None)


def test_loss_falls(folders, tmp_path):
    history = small_run(folders, tmp_path / "run", epochs=4)
    losses = [h["loss"] for h in history]
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
def test_a_run_resumes_where_it_stopped(folders, tmp_path):
    first = small_run(folders, tmp_path / "run", epochs=1)
    both = small_run(folders, tmp_path / "run", epochs=2)   # a fresh model, resumed from last.pt
    assert [h["epoch"] for h in both] == [1, 2] and both[0] == first[0]


@pytest.mark.slow
def test_train_py_end_to_end_with_extra_pairs(folders, tmp_path):
    crops = tmp_path / "crops"
    crops.mkdir()
    for name, value in (("p.png", 40), ("q.png", 200)):
        Image.new("L", (48, 48), value).save(crops / name)
    (crops / "pairs.csv").write_text("a,b,same\np.png,q.png,0\np.png,p.png,1\n")
    export = tmp_path / "model.safetensors"
    result = run_train(folders, "--epochs=2", f"--out_dir={tmp_path / 'run'}", f"--export={export}",
                       f"--extra_pairs={crops / 'pairs.csv'}", "--extra_batch_size=2", "--int8=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "extra_pairs=" in result.stdout            # the flagged pairs were trained on
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert 0 <= metrics["pair_auc"] <= 1 and metrics["triplets"] == 30
    for name in ("pair_auc", "pair_accuracy", "triplet_accuracy"):   # the test figures' spread
        low, high = metrics[f"{name}_interval"]
        assert 0 <= low <= metrics[name] <= high <= 1
    comparer = ExpressionComparer.load(export, "cpu")
    assert "--extra_pairs" in comparer.meta.training["command"]
    # The int8 encoder was exported beside it, calibrated with and is what the CPU runs.
    assert isinstance(comparer.encoder, Int8Encoder)
    assert comparer.meta.int8.sha256 == comparer.encoder.sha256
    assert comparer.encoder.path == export.with_suffix(".int8.onnx")
    image, other = folders / "test" / "class0" / "0.png", folders / "test" / "class2" / "0.png"
    r = comparer.compare(image, other, assume_cropped=True)
    assert 0 <= r.probability <= 1
    float_model = ExpressionComparer.load(export, "cpu", int8=False)
    # Each encoder runs with the calibration fitted on its own features.
    assert comparer.calibration == comparer.meta.int8.calibration
    assert float_model.calibration == comparer.meta.calibration != comparer.calibration
    assert float_model.compare(image, other, assume_cropped=True).probability == pytest.approx(
        r.probability, abs=0.05)


@pytest.mark.slow
def test_unknown_setting_is_refused():
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--no_such_thing=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "unknown setting" in result.stderr


SHIPPED = [ROOT / "checkpoints" / "fecsim-v4.safetensors", ROOT / "checkpoints" / "fecsim-v4.int8.onnx"]


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    """A checkpoint train.py made from the generated folders (one epoch, default settings,
    exported where a run exports by default: into its own out_dir)."""
    shipped = [checkpoint.sha256(p) for p in SHIPPED]
    run = tmp_path_factory.mktemp("trained") / "run"
    done = run_train(folders, f"--out_dir={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [checkpoint.sha256(p) for p in SHIPPED] == shipped   # the shipped model untouched
    return run / "fecsim.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("setting, named", [
    ("--grey=ture", "grey"), ("--int8=no_thanks", "int8"), ("--epochs=1.5", "epochs"),
    ("--lr=fast", "lr")])
def test_a_mistyped_value_is_refused_naming_the_setting(setting, named, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), setting, "--epochs=0",
                             f"--data={tmp_path / 'none'}", f"--out_dir={tmp_path / 'run'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and f"{named}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_existing_file_outside_out_dir_is_not_replaced_without_overwrite(folders, tmp_path):
    export = tmp_path / "kept.safetensors"
    export.write_bytes(b"someone's model")
    refused = run_train(folders, f"--out_dir={tmp_path / 'run'}", f"--export={export}")
    assert refused.returncode != 0 and "--overwrite=true" in refused.stderr
    assert export.read_bytes() == b"someone's model" and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_py_fine_tunes_from_a_checkpoint(folders, trained, tmp_path):
    parent = trained
    child = tmp_path / "child.safetensors"
    # A learning rate of ~0 keeps the weights where they started: the parent's.
    second = run_train(folders, f"--out_dir={tmp_path / 'b'}", f"--export={child}",
                       f"--init_from={parent}", "--lr=1e-12", "--seed=1")
    assert second.returncode == 0, second.stderr[-3000:]
    child_model, parent_model = ExpressionComparer.load(child), ExpressionComparer.load(parent)
    for name in ("trunk.conv1.weight", "trunk.layer4.1.conv2.weight", "pair_head.0.weight"):
        assert torch.allclose(child_model.model.get_parameter(name), parent_model.model.get_parameter(name))
    meta = child_model.meta.training
    assert meta["init_from"][0]["sha256"] == parent_model.sha256
    assert meta["init_from"][0]["training"]["history"][0]["epoch"] == 1   # the parent's own record
    misfit = run_train(folders, f"--out_dir={tmp_path / 'c'}", f"--init_from={parent}",
                       "--embed_dim=16")
    assert misfit.returncode != 0 and "does not fit this run's model settings" in misfit.stderr


def test_loss_falls_with_batches_augmented_on_the_device(folders, tmp_path):
    from fecsim.train.augment import augment_batch
    from fecsim.train.data import folder_tensor
    torch.manual_seed(0)
    images, labels, _ = folder_tensor(folders / "train", 48)
    model = SiameseResNet18(ModelConfig(num_classes=3, embed_dim=16, pair_hidden=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def batches(epoch):
        order = torch.randperm(len(labels))
        return ({"images": augment_batch(images[i], 48), "labels": labels[i]}
                for i in order.split(12))

    history = fit(model, opt, None, batches, 5, tmp_path / "run", torch.device("cpu"),
                  loss_fn=batch_loss, log=lambda *a: None)
    losses = [h["loss"] for h in history]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
def test_train_py_with_device_augmentation(folders, tmp_path):
    export = tmp_path / "model.safetensors"
    result = run_train(folders, "--augment=device", f"--out_dir={tmp_path / 'run'}",
                       f"--export={export}")
    assert result.returncode == 0, result.stderr[-3000:]
    meta = ExpressionComparer.load(export).meta
    assert meta.training["settings"]["augment"] == "device"
    assert meta.training["history"][0]["images_per_s"] > 0
    refused = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"--data={folders}", "--augment=device",
         "--thesis_augment=true"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "augment='device'" in refused.stderr


@pytest.mark.slow
def test_train_py_averages_checkpoints_into_a_soup(folders, tmp_path):
    a, b, soup = (tmp_path / f"{n}.safetensors" for n in ("a", "b", "soup"))
    for path, seed in ((a, 0), (b, 1)):
        done = run_train(folders, f"--seed={seed}", f"--out_dir={tmp_path / path.stem}",
                         f"--export={path}")
        assert done.returncode == 0, done.stderr[-3000:]
    done = run_train(folders, "--epochs=0", f"--init_from={a},{b}", f"--out_dir={tmp_path / 'soup'}",
                     f"--export={soup}")
    assert done.returncode == 0, done.stderr[-3000:]
    models = [ExpressionComparer.load(p) for p in (a, b, soup)]
    for name in ("trunk.conv1.weight", "trunk.bn1.running_var", "pair_head.2.bias"):
        wa, wb, ws = (m.model.get_buffer(name) if "running" in name else m.model.get_parameter(name)
                      for m in models)
        assert not torch.allclose(wa, wb)
        assert torch.allclose(ws, (wa + wb) / 2, rtol=2e-3, atol=1e-4)   # fp16 storage
    meta = models[2].meta
    assert [p["sha256"] for p in meta.training["init_from"]] == [m.sha256 for m in models[:2]]
    assert meta.training["history"] == [] and meta.calibration and "test" in meta.metrics
    other = tmp_path / "other.safetensors"
    done = run_train(folders, "--embed_dim=16", f"--out_dir={tmp_path / 'other'}",
                     f"--export={other}")
    assert done.returncode == 0, done.stderr[-3000:]
    misfit = run_train(folders, "--epochs=0", f"--init_from={a},{other}",
                       f"--out_dir={tmp_path / 'misfit'}")
    assert misfit.returncode != 0 and "cannot be averaged" in misfit.stderr


@pytest.mark.slow
def test_train_py_distils_from_a_teacher(folders, trained, tmp_path):
    teacher = trained
    student = tmp_path / "student.safetensors"
    done = run_train(folders, f"--out_dir={tmp_path / 's'}", f"--export={student}",
                     f"--teacher={teacher}", "--teacher_weight=0.7", "--augment=device")
    assert done.returncode == 0, done.stderr[-3000:]
    meta = ExpressionComparer.load(student).meta.training
    assert meta["teacher"]["sha256"] == ExpressionComparer.load(teacher).sha256
    assert meta["settings"]["teacher_weight"] == 0.7 and meta["history"][0]["classes"] > 0
    pairs_only = tmp_path / "pairs-only.safetensors"
    done = run_train(folders, f"--out_dir={tmp_path / 'p'}", f"--export={pairs_only}",
                     "--class_loss_weight=0")
    assert done.returncode == 0, done.stderr[-3000:]
    refused = run_train(folders, f"--out_dir={tmp_path / 'r'}", f"--teacher={pairs_only}")
    assert refused.returncode != 0 and "needs an expression classifier" in refused.stderr
