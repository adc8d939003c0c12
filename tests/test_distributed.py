"""train.py on FEC data: a two-process torchrun run on CPU (gloo) and a single-process pairs run,
both over tiny generated crops; each writes one checkpoint the app loads unchanged."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from fec_testdata import face, make_cache, row, write_csv
from fecsim import ExpressionComparer
from fecsim.train.fec.download import crop_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")


def tiny_fec(tmp_path, n_faces=24, n_train=32, n_test=6, groups=4):
    faces = [face(i) for i in range(n_faces)]
    images = make_cache(tmp_path / "images", faces, size=32)
    rng = np.random.default_rng(0)
    size = n_faces // groups

    def rows(n):
        # Triplet i takes its faces from group i % groups, so a face-disjoint validation split
        # (one group) leaves the other groups' triplets for training.
        out = []
        for i in range(n):
            group = i % groups
            picked = [faces[group * size + j] for j in rng.choice(size, 3, replace=False)]
            answer = int(rng.integers(1, 4))
            out.append(row([(f.url, f.box) for f in picked], TYPES[i % 3], [answer] * 4 + [1, 2]))
        return out

    train = write_csv(tmp_path / "train.csv", rows(n_train) + ["a malformed row"])
    test = write_csv(tmp_path / "test.csv", rows(n_test))
    return train, test, images, faces


def settings(tmp_path, train, test, images, **extra):
    values = dict(fec_train=train, fec_images=images, fec_test=test, image_size=32, grey=False,
                  class_loss_weight=0, batch_size=4, epochs=1, schedule="step", workers=0,
                  device="cpu", val_fraction=0.25, out_dir=tmp_path / "run",
                  export=tmp_path / "export" / "fec.safetensors", **extra)
    return [f"--{k}={v}" for k, v in values.items()]


def run(command):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def check_checkpoint(tmp_path, images, faces, processes):
    exported = list((tmp_path / "export").iterdir())
    assert [p.name for p in exported] == ["fec.safetensors"]      # one file, no leftovers
    assert (tmp_path / "run" / "last.pt").is_file()
    comparer = ExpressionComparer.load(exported[0], device="cpu")
    assert comparer.meta.training["processes"] == processes
    assert comparer.view.grey is False and comparer.view.face.margin == 0.1
    assert comparer.view.face.source_size is None
    # A quarter held out, face-disjoint: one of the four face groups, nothing dropped.
    data = comparer.meta.data
    assert (data["train_triplets"], data["val_triplets"], data["dropped_sharing_val_faces"]) == (24, 8, 0)
    test = comparer.meta.metrics["fec_test"]
    assert test["counts"]["listed"] == 6 and test["triplet_accuracy"]["all"]["triplets"] > 0
    result = comparer.compare(crop_path(images, faces[0]), crop_path(images, faces[1]),
                              assume_cropped=True)
    assert 0.0 <= result.probability <= 1.0
    return comparer


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
def test_torchrun_two_processes_gloo(tmp_path):
    train, test, images, faces = tiny_fec(tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    out = run(torchrun + ["train.py"] + settings(tmp_path, train, test, images))
    assert "x 2 processes" in out
    assert out.count("exported ") == 1          # rank 0 alone writes and reports
    assert out.count("epoch=1 ") == 1
    check_checkpoint(tmp_path, images, faces, processes=2)


def test_single_process_pairs_mode(tmp_path):
    train, test, images, faces = tiny_fec(tmp_path)
    out = run([sys.executable, "train.py"] + settings(tmp_path, train, test, images, fec_mode="pairs"))
    assert "x 1 processes" in out and "evaluated" in out
    comparer = check_checkpoint(tmp_path, images, faces, processes=1)
    assert comparer.meta.training["settings"]["fec_mode"] == "pairs"
