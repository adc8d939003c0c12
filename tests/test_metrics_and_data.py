"""Metrics on hand-worked cases; pairs and triplets drawn from labels; pair CSVs."""
import numpy as np
import pytest
import torch
from PIL import Image

from fecsim import metrics
from fecsim.train.data import PairsCSV, eval_transform, sample_pairs, sample_triplets
from fecsim.scoring import odd_one_out
from fecsim.view import View, model_inputs


def test_roc_auc_hand_worked():
    # positives 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 (pos, neg) orderings right
    assert metrics.roc_auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    assert metrics.roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)   # ties count half
    with pytest.raises(ValueError):
        metrics.roc_auc([0.1, 0.2], [1, 1])


def test_best_threshold_and_accuracy():
    p, y = [0.1, 0.35, 0.6, 0.8], [0, 0, 1, 1]
    threshold, acc = metrics.best_threshold(p, y)
    assert acc == 1.0 and 0.35 < threshold <= 0.6
    assert metrics.accuracy(p, y, 0.7) == 0.75


def test_reliability_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = rng.random(20000) < p                       # calibrated by construction
    ece, table = metrics.reliability(p, y)
    assert ece < 0.02 and len(table) == 10
    over = np.clip((p - 0.5) * 2 + 0.5, 0, 1)       # same ranking, overconfident
    assert metrics.reliability(over, y)[0] > 0.1


def test_platt_scaling_recovers_a_known_mapping():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, 20000)
    y = rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))
    scale, bias = metrics.fit_platt(logits, y)
    assert scale == pytest.approx(0.5, abs=0.05) and bias == pytest.approx(-1.0, abs=0.1)


def test_odd_one_out_from_pair_probabilities():
    # (p12, p13, p23): the most similar pair excludes the odd one
    assert odd_one_out([0.9, 0.1, 0.2]) == 3
    assert odd_one_out([0.1, 0.8, 0.2]) == 2
    assert odd_one_out([0.1, 0.2, 0.7]) == 1
    assert odd_one_out([[0.5, 0.5, 0.1]]).tolist() == [3]   # a tie goes to the earlier pair


def test_bootstrap_interval_of_an_accuracy_matches_the_binomial_spread():
    right = np.random.default_rng(2).random(1000) < 0.7
    low, high = metrics.bootstrap_interval(np.mean, right)
    half_width = 1.96 * np.sqrt(0.7 * 0.3 / 1000)           # normal approximation: 0.028
    assert low < right.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert metrics.bootstrap_interval(np.mean, right) == (low, high)        # fixed by the seed
    assert metrics.bootstrap_interval(np.mean, right, seed=1) != (low, high)


def test_bootstrap_interval_skips_resamples_a_statistic_refuses():
    # Two pairs: a resample holding only one class has no AUC and is left out, not an error.
    low, high = metrics.bootstrap_interval(metrics.roc_auc, [0.9, 0.1], [1, 0], resamples=50)
    assert low == high == 1.0


LABELS = np.array([0] * 50 + [1] * 30 + [2] * 20)


def test_pairs_are_balanced_deterministic_and_correct():
    pairs = sample_pairs(LABELS, 200, seed=3)
    assert pairs[:, 2].sum() == 100
    assert (LABELS[pairs[:, 0]] == LABELS[pairs[:, 1]]).astype(int).tolist() == pairs[:, 2].tolist()
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert np.array_equal(pairs, sample_pairs(LABELS, 200, seed=3))
    assert not np.array_equal(pairs, sample_pairs(LABELS, 200, seed=4))


def test_triplets_have_one_odd_image_at_the_stated_place():
    triplets = sample_triplets(LABELS, 300, seed=5)
    for i, j, k, odd in triplets:
        labels = LABELS[[i, j, k]]
        others = [labels[x] for x in range(3) if x != odd - 1]
        assert others[0] == others[1] != labels[odd - 1]
    assert set(triplets[:, 3]) == {1, 2, 3}
    assert np.array_equal(triplets, sample_triplets(LABELS, 300, seed=5))


def test_pairs_csv_relative_paths(tmp_path):
    for name in ("x.png", "y.png"):
        Image.new("L", (48, 48), 100).save(tmp_path / name)
    (tmp_path / "pairs.csv").write_text("a,b,same,comment\nx.png,y.png,1,hi\ny.png,x.png,0,\n")
    pairs = PairsCSV(tmp_path / "pairs.csv", eval_transform(48))
    a, b, same = pairs[0]
    assert len(pairs) == 2 and a.shape == (3, 48, 48) and same == torch.tensor(1.0)


def test_pairs_csv_missing_column(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\nx.png,y.png\n")
    with pytest.raises(ValueError, match="missing columns"):
        PairsCSV(tmp_path / "bad.csv", eval_transform(48))


def test_model_inputs_zoom_into_the_centre_and_add_mirror_images():
    faces = torch.zeros(2, 3, 48, 48)
    faces[..., :2, :] = faces[..., -3:, :] = 1   # a frame 2-3 px wide: outside the central 0.9
    faces[..., :, :2] = faces[..., :, -3:] = 1
    faces[1, :, 20:28, 10:16] = 0.5              # and something off-centre to mirror
    assert torch.equal(model_inputs(faces, View()), faces)
    closer = model_inputs(faces, View(zoom=0.9))
    assert closer.shape == faces.shape and closer[0].max() == 0   # the frame is gone, all of it
    both = model_inputs(faces, View(zoom=0.9, flip_average=True))
    assert both.shape == (4, 3, 48, 48)
    assert torch.equal(both[:2], closer) and torch.equal(both[2:], closer.flip(-1))
