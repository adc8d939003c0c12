"""FEC: the CSV reader, majority and agreement, the pair views, the datasets and the evaluation."""
import json

import numpy as np
import pytest
import torch

from fec_testdata import face, make_cache, row, write_csv
from fecsim.train.fec import evaluate as fec_eval
from fecsim.train.fec.__main__ import main
from fecsim.scoring import odd_one_out
from fecsim.train.fec.datasets import (CropCache, TripletFaces, closer_farther_pairs, holdout_by_faces,
                                 split_odd, thesis_pairs)
from fecsim.train.fec.reader import Triplet, majority, read_triplets

ONE, TWO, THREE = "ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET"
URLS = [("http://farm4.example.invalid/3679/a_b.jpg", (0.255556, 0.627778, 0.0981308, 0.338318)),
        ("http://farm8.example.invalid/7012/c,d.jpg", (0.1, 0.5, 0.2, 0.6)),   # comma inside quotes
        ("https://farm3.example.invalid/e.jpg", (0.3, 0.7, 0.25, 0.75))]


def test_reader_reads_the_format_and_counts_malformed_rows(tmp_path):
    good = row(URLS, ONE, [1, 1, 2, 1, 1, 3])
    lines = [
        good,
        row(URLS, THREE, [3, 3, 3, 3, 3, 3]) + "\r",                     # Windows line ending
        "",                                                             # blank: not a row
        good.rsplit(",", 3)[0],                                         # cut short mid-ratings
        good.replace("0.255556", "abc"),                                # box not a number
        good.replace(ONE, "FOUR_CLASS_TRIPLET"),                        # unknown type
        row(URLS, TWO, [1, 2, 4, 1, 1, 1]),                             # answer out of range
        '"http://unclosed.example.invalid/x.jpg,0.1,0.2',               # stray quote
        row(URLS, TWO, [2, 2, 1, 1, 3, 3]),                             # still read after it
        "url1,x0,x1,y0,y1",                                             # a header-like line
        good.replace('"http://farm4', '"ftp://farm4'),                  # not an http(s) URL
    ]
    triplets, report = read_triplets(write_csv(tmp_path / "fec.csv", lines))
    assert [t.kind for t in triplets] == [ONE, THREE, TWO]
    assert [t.line for t in triplets] == [1, 2, 9]
    first = triplets[0]
    assert first.faces[0].url == URLS[0][0] and first.faces[1].url == URLS[1][0]
    assert first.faces[0].box == URLS[0][1]            # FEC's order kept: x0/w, x1/w, y0/h, y1/h
    assert first.ratings[1] == ("rater1", 1) and first.answers == [1, 1, 2, 1, 1, 3]
    assert report.rows == 10 and report.triplets == 3 and report.skipped == 7
    assert report.malformed == {"columns": 3, "box": 1, "type": 1, "answer": 1, "url": 1}
    assert "7 malformed rows skipped" in report.summary()
    # The same face in two rows is one object (the train file repeats faces across triplets).
    assert triplets[0].faces[0] is triplets[1].faces[0]


@pytest.mark.parametrize("answers, expected", [
    ([1, 1, 1, 1, 1, 1], (1, 6)),
    ([3, 3, 3, 1, 2, 2], (3, 3)),
    ([2, 2, 2, 2, 1, 3], (2, 4)),
    ([1, 1, 2, 2, 3, 3], (None, 2)),    # three-way tie: no majority
    ([2, 2, 2, 1, 1, 1], (None, 3)),    # tie at the top
    ([1, 2, 2, 3, 3, 3], (3, 3)),
    ([], (None, 0)),
])
def test_majority_and_agreement(answers, expected):
    assert majority(answers) == expected
    t = Triplet((face(1), face(2), face(3)), TWO, tuple((f"r{i}", a) for i, a in enumerate(answers)), 1)
    assert (t.majority, t.agreement) == expected


def test_margins_and_pair_views():
    a, b, c = face(1), face(2), face(3)
    t_odd1 = Triplet((a, b, c), ONE, (("r", 1), ("s", 1), ("t", 2)), 1)
    t_odd3 = Triplet((a, b, c), THREE, (("r", 3),), 2)
    assert (t_odd1.margin, t_odd3.margin) == (0.1, 0.2)
    assert split_odd(t_odd1) == (b, c, a)
    assert split_odd(t_odd3) == (a, b, c)
    # Thesis: images 1 and 2 are similar iff the answer is 3.
    assert thesis_pairs([t_odd1, t_odd3]) == [(a, b, 0.0), (a, b, 1.0)]
    # Closer pair = the two that are not odd; each with the odd one = farther.
    assert closer_farther_pairs([t_odd1]) == [(b, c, 1.0), (b, a, 0.0), (c, a, 0.0)]
    with pytest.raises(ValueError):
        split_odd(Triplet((a, b, c), TWO, (("r", 1), ("s", 2)), 3))


def test_holdout_shares_no_face_with_training():
    # Two clusters of faces: triplets 0-2 share faces 1-4, triplets 3-5 share faces 11-14,
    # and triplet 6 bridges them through faces 4 and 11.
    ids = [(1, 2, 3), (2, 3, 4), (1, 3, 4), (11, 12, 13), (12, 13, 14), (11, 13, 14), (4, 11, 20)]
    triplets = [Triplet(tuple(face(i) for i in t), TWO, (("r", 1),), n) for n, t in enumerate(ids)]
    for seed in range(10):
        train, val, dropped = holdout_by_faces(triplets, 2 / 7, seed)
        val_faces = {f for t in val for f in t.faces}
        assert len(val) == 2 and len(train) + len(val) + dropped == len(triplets)
        assert not any(f in val_faces for t in train for f in t.faces)
        # Validation grows through shared faces: its two triplets share one (6 faces otherwise).
        assert len(val_faces) <= 5


def test_accuracy_by_type_hand_computed():
    predicted = [1, 2, 3, 1, 2, 3]
    answers = [1, 2, 1, 1, 3, 2]
    kinds = [ONE, ONE, TWO, THREE, THREE, THREE]
    result = fec_eval.accuracy_by_type(predicted, answers, kinds)
    assert result["all"] == {"triplets": 6, "accuracy": 0.5}          # 3 of 6 right
    assert result[ONE] == {"triplets": 2, "accuracy": 1.0}
    assert result[TWO] == {"triplets": 1, "accuracy": 0.0}
    assert result[THREE] == {"triplets": 3, "accuracy": 0.3333}       # 1 of 3


def test_odd_one_by_embedding_and_pair_labels():
    # Faces 0 and 1 point the same way, face 2 away: in triplet (0, 1, 2) the odd one is 3rd;
    # in (2, 0, 1) it is the 1st.
    z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    index = np.array([[0, 1, 2], [2, 0, 1], [0, 2, 1]])
    assert fec_eval.odd_by_embedding(z, index).tolist() == [3, 1, 2]
    assert fec_eval.closer_farther_labels(np.array([1, 2, 3])).tolist() == [
        [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    logits = np.array([[0.0, -1.0, 2.0], [3.0, 1.0, -2.0]])    # pairs 12, 13, 23
    assert odd_one_out(logits).tolist() == [1, 3]


def test_triplet_dataset_puts_the_odd_face_last(tmp_path):
    faces = [face(i) for i in range(3)]
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250)]
    cache = CropCache(make_cache(tmp_path / "crops", faces, colours=colours))
    t = Triplet(tuple(faces), ONE, (("r", 2), ("s", 2), ("t", 1)), 1)
    from fecsim.train.data import eval_transform
    item = TripletFaces([t], cache, eval_transform(16, grey=False))[0]
    channel = {k: int(item[k].mean((1, 2)).argmax()) for k in ("anchor", "positive", "negative")}
    assert channel["negative"] == 1                              # face 2 (green) is odd
    assert {channel["anchor"], channel["positive"]} == {0, 2}
    assert float(item["margin"]) == pytest.approx(0.1)


def test_evaluate_cli_counts_and_scores(tmp_path, random_checkpoint, capsys):
    faces = [face(i) for i in range(7)]
    cache_dir = make_cache(tmp_path / "crops", faces[:6], size=48)      # face 6 never downloaded
    lines = [row([(f.url, f.box) for f in faces[i:i + 3]], kind, answers)
             for i, kind, answers in [(0, ONE, [1, 1, 1, 2, 3, 1]), (1, TWO, [3, 3, 2, 3, 3, 3]),
                                      (2, THREE, [2, 2, 2, 2, 2, 2]), (3, ONE, [3, 3, 2, 2, 1, 1]),
                                      (4, TWO, [1, 1, 1, 1, 1, 1])]]       # last needs face 6
    lines.append("not,a,row")
    csv = write_csv(tmp_path / "test.csv", lines)
    out = tmp_path / "result.json"
    assert main(["evaluate", str(csv), "--images", str(cache_dir), "--checkpoint",
                 str(random_checkpoint), "--device", "cpu", "--workers", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["counts"] == {"listed": 5, "malformed_rows": 1, "clear_majority": 4, "evaluated": 3}
    table = result["triplet_accuracy"]
    assert table["all"]["triplets"] == 3
    assert sum(table[k]["triplets"] for k in (ONE, TWO, THREE) if k in table) == 3
    # Per-type accuracies are consistent with the overall one.
    assert table["all"]["accuracy"] == pytest.approx(
        sum(table[k]["accuracy"] * table[k]["triplets"] for k in (ONE, TWO, THREE)) / 3, abs=1e-3)
    pairs = result["thesis_pairs"]
    assert pairs["pairs"] == 3
    assert pairs["majority_class_rate"] == pytest.approx(2 / 3, abs=1e-3)   # answers 1, 3, 2
    printed = capsys.readouterr().out
    assert "evaluated 3 of 5 listed triplets" in printed and "81.8 %" in printed


def test_calibration_from_triplets_separates_closer_pairs():
    rng = np.random.default_rng(0)
    odd = rng.integers(1, 4, 300)
    labels = fec_eval.closer_farther_labels(odd)
    logits = np.where(labels == 1, 2.0, -2.0) + rng.normal(0, 1.0, labels.shape)
    cal = fec_eval.calibration_from_triplets(logits, odd)
    assert cal["scale"] > 0 and cal["fit_accuracy"] > 0.9 and cal["fitted_on_pairs"] == 900
    assert 0 < cal["threshold"] < 1


def test_fec_run_modes_and_clear_errors(tmp_path):
    from fecsim.train.data import eval_transform
    from fecsim.errors import FecsimError
    from fecsim.train.fec.source import FecTriplets as FecRun
    faces = [face(i) for i in range(12)]
    images = make_cache(tmp_path / "images", faces)
    # Two groups of six faces, six triplets each: validation takes three of one group, drops that
    # group's other three (they share its faces) and leaves the other group for training.
    lines = [row([(f.url, f.box) for f in faces[6 * (i % 2) + (i % 3): 6 * (i % 2) + (i % 3) + 3]],
                 TWO, [1 + i % 3] * 4) for i in range(12)]
    csv = write_csv(tmp_path / "train.csv", lines)
    silent = lambda *a: None  # noqa: E731
    split = FecRun(csv, images, "triplet", val_fraction=0.25, log=silent)
    val_faces = {f for t in split.val for f in t.faces}
    assert (len(split.train), len(split.val), split.dropped) == (6, 3, 3)
    assert not any(f in val_faces for t in split.train for f in t.faces)
    transform = eval_transform(16, grey=False)
    assert set(split.dataset(transform)[0]) == {"anchor", "positive", "negative", "margin"}
    pairs = FecRun(csv, images, "pairs", val_fraction=0.25, log=silent)
    assert len(pairs.dataset(transform)) == 3 * len(pairs.train)        # closer + two farther
    thesis = FecRun(csv, images, "thesis", val_fraction=0.25, log=silent)
    assert (len(thesis.train), len(thesis.val), thesis.dropped) == (9, 3, 0)  # random, as the thesis
    assert set(thesis.dataset(transform)[0]) == {"a", "b", "same"}
    with pytest.raises(FecsimError, match="unknown fec_mode 'nope'"):
        FecRun(csv, images, "nope", log=silent)
    with pytest.raises(FecsimError, match="0 usable FEC triplets .* download the faces first"):
        FecRun(csv, make_cache(tmp_path / "empty", []), "triplet", log=silent)
