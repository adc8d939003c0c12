"""The geometry view and expression pair scores: blendshapes read at full resolution, a gate that
falls back to appearance, mirror invariance, a face against itself as the highest score, the
verdict at 0.5, the heads trained on stored features, and figures on photos across people."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fecsim import ExpressionComparer, checkpoint
from fecsim.train.data import sample_pairs, sample_triplets
from fecsim.geometry import BLENDSHAPES, FaceGeometry, mirror_pairs
from fecsim.train.heads import adjust_for_priors, fit_heads
from fecsim.metrics import overlap
from fecsim.model import ModelConfig, SiameseResNet18, split_geometry

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]


def geometry_model(seed=0) -> SiameseResNet18:
    torch.manual_seed(seed)
    return SiameseResNet18(ModelConfig(num_classes=8, class_names=CLASSES, geometry=True,
                                       pair_score="expressions", pair_temperature=0.6)).eval()


@pytest.fixture(scope="module")
def geometry_checkpoint(tmp_path_factory):
    meta = {"input_size": 48, "grey": True, "flip_average": True,
            "face": {"margin": 0.0, "square": True, "source_size": 48, "align": True},
            "calibration": {"scale": 0.7, "bias": -0.1, "threshold": 0.5},
            "data": {"name": "random weights for tests"}}
    return checkpoint.save(tmp_path_factory.mktemp("geo") / "geo.safetensors", geometry_model(),
                           meta)


def test_the_landmarker_reads_52_blendshapes_of_a_real_face(astronaut):
    reader = FaceGeometry.available()
    assert reader is not None, "mediapipe and checkpoints/face_landmarker.task are requirements"
    face = Image.fromarray(astronaut).crop((170, 50, 280, 185))
    scores = reader(face)
    assert scores.shape == (len(BLENDSHAPES),) and ((scores >= 0) & (scores <= 1)).all()
    smile = scores[BLENDSHAPES.index("mouthSmileLeft")] + scores[BLENDSHAPES.index("mouthSmileRight")]
    assert smile > 0.5                          # the astronaut smiles
    assert reader(Image.new("RGB", (128, 128), (90, 90, 90))) is None   # no face: no geometry


def test_blendshapes_are_read_mirror_invariantly():
    head = geometry_model().geometry
    single, pairs = mirror_pairs()
    assert len(single) + 2 * len(pairs) == len(BLENDSHAPES) - 1     # every shape but _neutral
    b = torch.rand(5, len(BLENDSHAPES))
    mirrored = b.clone()
    for left, right in pairs:
        mirrored[:, [left, right]] = b[:, [right, left]]
    assert torch.allclose(head.symmetric(b), head.symmetric(mirrored))
    assert not torch.allclose(head.symmetric(b), head.symmetric(torch.rand(5, len(BLENDSHAPES))))


def test_without_geometry_the_model_answers_from_appearance_alone():
    model = geometry_model()
    z = torch.randn(6, model.feature_dim)
    z[:, model.z_dim:] = 0                       # the landmarker found nothing
    assert torch.allclose(model.classify(z), model.classifier(z[:, : model.z_dim]))
    assert (model.geometry_weight(z) == 0).all()
    z[:, -1] = 1
    z[:, model.z_dim:-1] = torch.rand(6, len(BLENDSHAPES))
    assert not torch.allclose(model.classify(z), model.classifier(z[:, : model.z_dim]))
    weights = model.geometry_weight(z)
    assert ((weights > 0) & (weights < 1)).all()
    assert split_geometry(z, model.z_dim)[1].shape == (6, len(BLENDSHAPES))


def test_a_face_against_itself_is_the_highest_expression_score():
    model = geometry_model()
    z = torch.randn(20, model.feature_dim)
    z[:, -1] = (torch.arange(20) % 2).float()
    with torch.no_grad():
        itself = model.pair_logits(z, z)
        others = model.pair_logits(z, z.roll(1, 0))
    assert torch.allclose(itself, itself[0].expand(20))   # the same for every face
    assert (itself > others).all()
    assert overlap(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]))[0] == pytest.approx(1)


def test_compare_a_photo_with_its_mirror_scores_same_and_says_its_views(geometry_checkpoint,
                                                                         astronaut):
    comparer = ExpressionComparer.load(geometry_checkpoint, "cpu")
    result = comparer.compare(astronaut, astronaut[:, ::-1].copy())
    assert result.threshold == 0.5
    assert result.probability >= 0.9 and result.same
    assert result.views == (("appearance", "geometry"), ("appearance", "geometry"))
    details = result.to_dict()
    assert details["views_a"] == ["appearance", "geometry"]
    assert 0 < details["geometry_weight_a"] < 1
    plain = ExpressionComparer.load(geometry_checkpoint, "cpu", geometry=False)
    assert plain.compare(astronaut, astronaut).views == (("appearance",), ("appearance",))


def test_the_verdict_is_same_exactly_when_the_probability_reaches_one_half(geometry_checkpoint):
    comparer = ExpressionComparer.load(geometry_checkpoint, "cpu")
    z = torch.randn(400, comparer.model.feature_dim)
    z[:, -1] = 0
    p = comparer.pair_probabilities(z[:200], z[200:])
    assert ((p >= 0.5) == (p >= comparer.threshold)).all() and (p < 0.5).any()


def test_pairs_and_triplets_can_be_drawn_across_people():
    labels = np.repeat(np.arange(3), 8)
    people = np.arange(24) // 2                      # two photos of each person, same label
    pairs = sample_pairs(labels, 200, 0, groups=people)
    assert (people[pairs[:, 0]] != people[pairs[:, 1]]).all()
    assert pairs[:, 2].sum() == 100
    triplets = sample_triplets(labels, 200, 0, groups=people)
    for i, j, k, odd in triplets:
        assert len({people[i], people[j], people[k]}) == 3
        mates = [x for n, x in enumerate((i, j, k), 1) if n != odd]
        assert labels[mates[0]] == labels[mates[1]] != labels[(i, j, k)[odd - 1]]
    assert (sample_pairs(labels, 50, 3) == sample_pairs(labels, 50, 3)).all()


def test_heads_learn_from_stored_features_and_priors_shift_the_biases():
    model = geometry_model()
    torch.manual_seed(1)
    votes = torch.eye(8)[torch.randint(0, 8, (512,))]
    z = torch.randn(512, model.feature_dim) * 0.1
    z[:, :8] += 3 * votes                            # the class is readable from z
    z[:, -1] = 1
    history = fit_heads(model, z, votes, epochs=8, lr=1e-2, balance=0.5, seed=0, log=lambda *a: None)
    assert history[-1]["loss"] < history[0]["loss"] * 0.8
    assert all(p.requires_grad for p in model.parameters())   # handed back as it came
    before = model.classifier.bias.detach().clone()
    shift = adjust_for_priors(model, [0] * 90 + [1] * 10, 0.5)
    assert shift[0] < shift[1]                       # the common class loses most
    assert torch.allclose(model.classifier.bias - before, torch.tensor(shift), atol=1e-3)


def test_evaluate_photos_goes_through_detection_across_people(geometry_checkpoint, astronaut, tmp_path):
    from fecsim.train.evaluate import evaluate_photos, person_of
    face = Image.fromarray(astronaut).crop((100, 0, 380, 300))
    for label, people in (("happy", ("Ann", "Bob", "Cy")), ("sad", ("Dee", "Eve", "Fay"))):
        (tmp_path / label).mkdir()
        for n, person in enumerate(people):
            face.rotate(4 * n).save(tmp_path / label / f"{person}_000{n + 1}.jpg")
    Image.new("RGB", (200, 200), "grey").save(tmp_path / "sad" / "Gus_0001.jpg")   # no face
    comparer = ExpressionComparer.load(geometry_checkpoint, "cpu")
    result = evaluate_photos(comparer, tmp_path, n_pairs=20, n_triplets=20, seed=0)
    assert result["photos"] == 7 and result["no_face"] == 1 and result["people"] == 6
    assert set(result["triplet_accuracy_by_shared_expression"]) == {"happiness", "sadness"}
    assert set(result["read_as"]) == {"happiness", "sadness"}
    assert result["geometry_found"] == 1.0
    assert person_of("George_W_Bush_0012.jpg") == "George_W_Bush" and person_of("x.jpg") == "x"


@pytest.mark.slow
def test_train_py_trains_the_heads_of_a_model_with_a_geometry_view(tmp_path, random_checkpoint):
    from test_votes import make_vote_folders
    folders = make_vote_folders(tmp_path / "votes")
    export = tmp_path / "heads.safetensors"
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"--data={folders}", "--epochs=2",
         f"--init_from={random_checkpoint}", "--head_only=true", "--geometry=true",
         "--pair_score=expressions", "--pair_temperature=0.6", "--logit_adjust=0.2",
         "--balance=0.8", "--workers=0", "--val_pairs=60", "--test_pairs=40",
         "--test_triplets=30", "--int8=false", "--image_size=48",
         f"--out_dir={tmp_path / 'run'}", f"--export={export}"],
        cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = checkpoint.read_meta(export)
    assert meta.model.geometry and meta.model.pair_score == "expressions"
    assert meta.calibration["target"] == "vote overlap" and meta.calibration["threshold"] == 0.5
    assert (tmp_path / "run" / "train_features.pt").is_file()   # a second start reads it
    model, _ = checkpoint.load(export)
    parent, _ = checkpoint.load(random_checkpoint)
    assert torch.equal(model.trunk.conv1.weight, parent.trunk.conv1.weight)   # the trunk is kept


def test_self_pairs_score_a_copy_and_a_mirror_as_the_same_expression(geometry_checkpoint, tmp_path):
    from test_votes import make_vote_folders
    from fecsim.train.evaluate import self_pairs
    folders = make_vote_folders(tmp_path / "votes", per_split=60)
    comparer = ExpressionComparer.load(geometry_checkpoint, "cpu")
    result = self_pairs(comparer, folders / "test", per_expression=5)
    assert set(result) == {"neutral", "happiness", "surprise", "sadness"}   # the four made
    for row in result.values():
        assert row["itself"] >= 0.9 and row["mirror"] >= 0.9 and row["verdict_same"] == 1.0


def test_a_landmarker_file_other_than_the_trained_one_is_refused(tmp_path):
    from fecsim.errors import CheckpointError
    other = tmp_path / "face_landmarker.task"
    other.write_bytes(b"not the bundle")
    with pytest.raises(CheckpointError, match="sha256"):
        FaceGeometry(other)(Image.new("RGB", (64, 64)))


def test_the_cli_reads_both_views_unless_told_appearance_only(geometry_checkpoint, astronaut_jpg,
                                                              capsys):
    import json
    from fecsim import cli
    for extra, views in (([], ["appearance", "geometry"]), (["--appearance-only"], ["appearance"])):
        assert cli.main(["compare", str(astronaut_jpg), str(astronaut_jpg),
                         f"--checkpoint={geometry_checkpoint}", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["views_a"] == views and result["same"] == (result["probability"] >= 0.5)
