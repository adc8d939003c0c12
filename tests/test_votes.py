"""Vote-labelled folders (FER+ layout): reading the votes, graded pair targets, soft class targets,
class balance, domain augmentation, fine-tuning across class lists, and train.py on such a folder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fecsim import checkpoint
from fecsim.train.augment import augment_batch, degrade_batch
from fecsim.train.data import VOTE_CLASSES, VoteFolder, class_balance_weights, folder_tensor
from fecsim.train.evaluate import clear_majority, graded_triplets
from fecsim.metrics import agreement
from fecsim.model import SAME_EXPRESSION, ModelConfig, SiameseResNet18, load_parent_weights
from fecsim.train.loop import batch_loss, pair_targets

ROOT = Path(__file__).resolve().parent.parent
HEADER = "image," + ",".join(VOTE_CLASSES) + ",unknown,NF"


def make_vote_folders(root: Path, per_split: int = 48) -> Path:
    """FER+'s layout: <split>/ferNNNNNNN.png beside labels.csv of 10 votes per face. Expression k
    is a bright band at row k (of 4); most faces have 7 votes for it and 3 for its neighbour; every
    12th face is mostly 'unknown' and 'not a face'."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        folder = root / split
        folder.mkdir(parents=True)
        rows = [HEADER]
        for i in range(per_split):
            k = i % 4
            pixels = (rng.random((48, 48)) * 80).astype(np.uint8)
            pixels[k * 12:(k + 1) * 12] += 150
            name = f"fer{i:07d}.png"
            Image.fromarray(pixels).save(folder / name)
            votes = [0] * 10
            votes[k], votes[(k + 1) % 4] = 7, 3
            if i % 12 == 11:
                votes = [1] + [0] * 7 + [5, 4]
            rows.append(name + "," + ",".join(map(str, votes)))
        (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return root


@pytest.fixture(scope="module")
def vote_folders(tmp_path_factory):
    return make_vote_folders(tmp_path_factory.mktemp("votes"))


def test_vote_folder_reads_distributions_and_drops_unreadable_faces(vote_folders):
    split = VoteFolder(vote_folders / "train")
    assert split.dropped == 4 and len(split) == 44   # every 12th face: mostly unknown / not a face
    assert split.classes == list(VOTE_CLASSES)
    assert torch.allclose(split.votes.sum(1), torch.ones(len(split)))
    assert split.votes[0, 0] == pytest.approx(0.7) and split.votes[0, 1] == pytest.approx(0.3)
    assert split.targets[:4] == [0, 1, 2, 3] and split.agreement[0] == 7
    image, votes = split[1]
    assert image.size == (48, 48) and torch.equal(votes, split.votes[1])


def test_vote_folder_names_a_missing_column(tmp_path):
    (tmp_path / "labels.csv").write_text("image,neutral,happiness\nfer0000000.png,9,1\n")
    with pytest.raises(ValueError, match="missing columns"):
        VoteFolder(tmp_path)


def test_folder_tensor_of_a_vote_folder_keeps_the_votes(vote_folders):
    images, targets, classes = folder_tensor(vote_folders / "val", 48)
    assert images.shape == (44, 1, 48, 48) and targets.shape == (44, len(VOTE_CLASSES))
    assert classes == list(VOTE_CLASSES)


def test_graded_pair_targets_are_the_chance_two_raters_agree():
    votes = torch.tensor([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    i, j = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    assert torch.allclose(pair_targets(votes, i, j), torch.tensor([0.6, 0.0, 0.0]))
    assert torch.equal(pair_targets(torch.tensor([1, 1, 2]), i, j), torch.tensor([1.0, 0.0, 0.0]))
    assert agreement(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_soft_targets_train_pairs_and_classes():
    """A batch with vote distributions trains both losses, and the class loss is the cross-entropy
    against the distribution: lowest when the model predicts the votes, not their argmax."""
    torch.manual_seed(0)
    model = SiameseResNet18(ModelConfig(num_classes=3, embed_dim=8, pair_hidden=8))
    votes = torch.tensor([[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8], [0.6, 0.4, 0.0]])
    loss, parts = batch_loss(model, {"images": torch.rand(4, 3, 32, 32), "labels": votes})
    assert set(parts) == {"pairs", "classes"} and loss.requires_grad
    loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    target = torch.tensor([[0.6, 0.4, 0.0]])
    as_votes = torch.nn.functional.cross_entropy(target.clamp(min=1e-6).log(), target)
    as_argmax = torch.nn.functional.cross_entropy(torch.tensor([[0.999, 0.0005, 0.0005]]).log(), target)
    assert as_votes < as_argmax


def test_class_balance_weights_draw_rare_classes_more_often():
    targets = [0] * 90 + [1] * 10
    flat, half, equal = (class_balance_weights(targets, p) for p in (0.0, 0.5, 1.0))
    assert torch.all(flat == 1)
    share = lambda w: float(w[90:].sum() / w.sum())  # noqa: E731
    assert share(flat) == pytest.approx(0.1) and share(equal) == pytest.approx(0.5)
    assert 0.1 < share(half) < 0.5


def test_degrade_batch_changes_images_within_range_and_is_seeded():
    images = torch.rand(16, 1, 64, 64)
    settings = dict(lowres_p=1.0, gamma_p=1.0, blur_p=1.0, jpeg_p=1.0, noise_p=1.0)
    a = degrade_batch(images, torch.Generator().manual_seed(3), **settings)
    b = degrade_batch(images, torch.Generator().manual_seed(3), **settings)
    assert a.shape == images.shape and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1 and (a - images).abs().mean() > 0.02
    off = degrade_batch(images, torch.Generator().manual_seed(3), lowres_p=0, gamma_p=0, blur_p=0,
                        jpeg_p=0, noise_p=0)
    assert torch.equal(off, images)
    with pytest.raises(TypeError, match="unknown"):
        degrade_batch(images, jpeg=1)
    out = augment_batch((images * 255).to(torch.uint8), 48, torch.Generator().manual_seed(0), domain=True)
    assert out.shape == (16, 3, 48, 48)


def test_fine_tuning_onto_other_classes_keeps_the_rows_both_know():
    torch.manual_seed(0)
    parent = SiameseResNet18(ModelConfig(num_classes=3, class_names=["angry", "happy", "fear"]))
    child = SiameseResNet18(ModelConfig(num_classes=3, class_names=["happiness", "contempt", "anger"]))
    fresh_row = child.classifier.weight[1].detach().clone()
    assert load_parent_weights(child, parent) == ["contempt"]
    assert torch.equal(child.classifier.weight[0], parent.classifier.weight[1])   # happy
    assert torch.equal(child.classifier.weight[2], parent.classifier.weight[0])   # angry
    assert torch.equal(child.classifier.weight[1], fresh_row)
    assert torch.equal(child.trunk.conv1.weight, parent.trunk.conv1.weight)


def test_clear_majority_and_graded_triplets(vote_folders):
    split = VoteFolder(vote_folders / "test")
    assert len(clear_majority(split, 7)) == 44 and clear_majority(split, 8) == []
    # 12 faces of each expression but the last, which lost 4 to "unknown"
    kept = clear_majority(split, 7, min_faces=12)
    assert len(kept) == 36 and 3 not in {split.targets[i] for i in kept}
    votes = split.votes.numpy()
    rows = graded_triplets(votes, 50, seed=0)
    assert len(rows) == 50
    for i, j, k, odd in rows:
        a = [agreement(votes[j], votes[k]), agreement(votes[i], votes[k]), agreement(votes[i], votes[j])]
        assert np.argmax(a) + 1 == odd and sorted(a)[2] - sorted(a)[1] >= 0.3


@pytest.mark.slow
def test_train_py_on_vote_folders_calibrates_to_rater_agreement(vote_folders, tmp_path):
    export = tmp_path / "votes.safetensors"
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"--data={vote_folders}", "--epochs=1",
         "--batch_size=12", "--workers=0", "--val_pairs=60", "--test_pairs=40",
         "--test_triplets=30", "--int8=false", "--augment=device", "--domain_augment=true",
         "--balance=0.5", "--min_agreement=7", "--label_smoothing=0", "--image_size=48",
         f"--out_dir={tmp_path / 'run'}", f"--export={export}"],
        cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = checkpoint.read_meta(export)
    assert meta.model.class_names == list(VOTE_CLASSES)
    assert meta.calibration["target"] == "rater agreement"
    assert meta.data["dropped_unreadable"] == {"train": 4, "val": 4, "test": 4}
    assert "val_auc" in meta.training["history"][0]
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert set(test) >= {"clear_majority", "majority", "graded_triplets", "agreement_calibration"}
    assert 0 <= test["graded_triplets"]["accuracy"] <= 1 and test["dropped_unreadable"] == 4


@pytest.mark.slow
def test_robustness_scores_every_condition_through_the_app_path(vote_folders, random_checkpoint):
    from fecsim import ExpressionComparer
    from fecsim.train.robustness import CONDITIONS, evaluate_robustness
    comparer = ExpressionComparer.load(random_checkpoint, "cpu")
    result = evaluate_robustness(comparer, vote_folders / "test", n_faces=30, n_pairs=40,
                                 n_triplets=40, min_faces=5)
    assert result["faces"] == 30 and set(result["conditions"]) == set(CONDITIONS)
    rows = result["conditions"]
    assert 0 <= rows["detector"]["detected"] <= 1   # band patterns are seldom taken for faces
    # flip averaging: a mirrored face gives the model exactly what the face itself does
    assert rows["mirror"]["pair_auc"] == rows["clean"]["pair_auc"]
    assert rows["clean"]["drop"] == {"pair_auc": 0, "pair_accuracy": 0, "triplet_accuracy": 0}
    assert rows["blur"] != rows["clean"] or rows["jpeg30"] != rows["clean"]


def test_fer2013_labels_join_ferplus_votes_by_their_pixels(vote_folders, tmp_path):
    """scripts/ferplus_with_fer2013_labels: FER2013's copy of each face (JPEG, another name, in a
    folder per label) is found by its pixels, and its label counted as more votes; faces FER+
    drops stay dropped, and val stays FER+'s own."""
    rows = (vote_folders / "train" / "labels.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    rng = np.random.default_rng(1)
    fer2013_names = {}
    for row in rows:
        name = row.split(",")[0]
        label = ["neutral", "happy", "surprise", "sad", "angry"][rng.integers(5)]
        folder = tmp_path / "fer2013" / "train" / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(vote_folders / "train" / name).save(folder / f"Training_{rng.integers(1e8)}.jpg",
                                                        quality=90)
        fer2013_names[name] = SAME_EXPRESSION.get(label, label)
    out = tmp_path / "mixed"
    subprocess.run([sys.executable, "-m", "scripts.ferplus_with_fer2013_labels", str(vote_folders),
                    str(tmp_path / "fer2013"), str(out), "--votes", "4"], cwd=ROOT, check=True)
    mixed, plain = VoteFolder(out / "train"), VoteFolder(vote_folders / "train")
    assert [f.name for f in mixed.files] == [f.name for f in plain.files] and mixed.dropped == 4
    for i, f in enumerate(mixed.files):
        expected = plain.votes[i] * 10
        expected[VOTE_CLASSES.index(fer2013_names[f.name])] += 4
        assert torch.allclose(mixed.votes[i], expected / 14)
    assert (out / "val" / "labels.csv").read_bytes() == (vote_folders / "val" / "labels.csv").read_bytes()
