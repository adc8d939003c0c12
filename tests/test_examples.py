"""The example photos keep their promises with the shipped model: each photo is read as the
expression its file is labelled with, the clear pairs come out as their caption says, and
together they cover six expressions and four people or more."""
from pathlib import Path

import pytest

from fecsim import ExpressionComparer, shipped_examples as examples

LABELS = {"happy": "happiness", "surprise": "surprise", "sad": "sadness", "angry": "anger",
          "neutral": "neutral", "disgust": "disgust"}   # as in examples/make_examples.py


def label(path: str) -> str:
    return LABELS[Path(path).name.split("-", 1)[0]]


def person(path: str) -> str:
    return Path(path).stem.split("-", 1)[1].rsplit("_", 1)[0]


def test_the_examples_are_listed_with_what_to_expect():
    pairs, triplets = examples.pairs(), examples.triplets()
    assert {p.expect for p in pairs} == {"same", "different", "hard"}
    assert all(len(t.photos) == 3 and t.expect in "123" for t in triplets)
    photos = examples.photos()
    assert all(Path(p).is_file() for p in photos)
    assert len({label(p) for p in photos}) >= 6 and len({person(p) for p in photos}) >= 4
    assert pairs[0].caption == "Clearly the same: two people, both happy"


@pytest.fixture(scope="module")
def shipped():
    return ExpressionComparer.load(device="cpu")


def test_the_shipped_model_reads_each_example_as_labelled(shipped):
    for pair in examples.pairs():
        result = shipped.compare(*pair.photos)
        assert [next(iter(e)) for e in result.expressions] == [label(p) for p in pair.photos]
        if pair.expect == "same":
            assert result.same and result.probability >= 0.5, pair   # whatever the threshold
        elif pair.expect == "different":
            assert not result.same and result.probability < 0.2, pair
    for triplet in examples.triplets():
        assert str(shipped.odd_one_out(*triplet.photos).odd) == triplet.expect, triplet
