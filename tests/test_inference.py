"""ExpressionComparer on real faces: paths, PIL images and arrays; pairs, triplets, embeddings."""
import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer, NoFaceError


@pytest.fixture(scope="module")
def comparer(random_checkpoint):
    return ExpressionComparer.load(random_checkpoint, device="cpu")


def test_compare_accepts_paths_pil_and_arrays(comparer, astronaut, astronaut_jpg):
    by_path = comparer.compare(astronaut_jpg, astronaut_jpg)
    by_array = comparer.compare(astronaut, Image.fromarray(astronaut))
    assert 0 <= by_path.probability <= 1
    assert by_path.same == (by_path.probability >= comparer.threshold)
    assert by_path.verdict in ("same expression", "different expression")
    # JPEG round trip aside, the same photo gives the same answer whatever form it comes in
    assert by_array.probability == pytest.approx(by_path.probability, abs=0.05)
    assert by_path.faces[0].crop.size == (48, 48) and len(by_path.faces[0].box) == 4


def test_same_face_twice_matches_itself_exactly(comparer, astronaut):
    r1 = comparer.compare(astronaut, astronaut)
    r2 = comparer.compare(astronaut, astronaut)
    assert r1.probability == r2.probability
    e = comparer.embed(list(r1.faces))
    assert np.allclose(e[0].numpy(), e[1].numpy())


def test_compare_is_symmetric(comparer, astronaut):
    other = np.asarray(Image.fromarray(astronaut).rotate(8))
    ab = comparer.compare(astronaut, other).probability
    ba = comparer.compare(other, astronaut).probability
    assert ab == pytest.approx(ba, abs=1e-6)


def test_odd_one_out(comparer, astronaut):
    other = np.asarray(Image.fromarray(astronaut).rotate(10))
    result = comparer.odd_one_out(astronaut, other, astronaut)
    p = result.probabilities
    assert set(p) == {"12", "13", "23"}
    # The odd one is the image outside the most similar pair ...
    assert result.odd == {"23": 1, "13": 2, "12": 3}[max(p, key=p.get)]
    # ... and each pair's probability is what compare() says of that pair.
    assert p["13"] == pytest.approx(comparer.compare(astronaut, astronaut).probability, abs=1e-6)
    assert p["12"] == pytest.approx(comparer.compare(astronaut, other).probability, abs=1e-6)
    assert p["12"] == pytest.approx(p["23"], abs=1e-6)   # images 1 and 3 are the same photo


def test_no_face_raises_instead_of_guessing(comparer, astronaut, no_face_jpg):
    with pytest.raises(NoFaceError, match="coffee.jpg: no face found"):
        comparer.compare(astronaut, no_face_jpg)


def test_result_serialises(comparer, astronaut):
    d = comparer.compare(astronaut, astronaut).to_dict()
    assert set(d) >= {"probability", "same", "verdict", "box_a", "box_b", "seconds"}


def test_sha256_identifies_the_checkpoint(comparer, random_checkpoint):
    import hashlib
    assert comparer.sha256 == hashlib.sha256(random_checkpoint.read_bytes()).hexdigest()


def test_faces_found_side_by_side_match_one_at_a_time(comparer, astronaut):
    other = np.asarray(Image.fromarray(astronaut).rotate(8))
    together = comparer.faces((astronaut, other, astronaut), (None, None, None))
    alone = [comparer.face(image) for image in (astronaut, other, astronaut)]
    assert [f.box for f in together] == [f.box for f in alone]
    assert all(np.array_equal(np.asarray(t.crop), np.asarray(a.crop)) for t, a in zip(together, alone))


def test_detecting_side_by_side_leaves_the_callers_threads_alone(comparer, astronaut):
    import torch
    before = torch.get_num_threads()
    comparer.faces((astronaut, astronaut), (None, None))
    assert torch.get_num_threads() == before


def test_each_face_has_its_expression_distribution(comparer, astronaut, tmp_path):
    """The classifier's softmax over the checkpoint's own class names, most likely first."""
    result = comparer.compare(astronaut, astronaut)
    names = comparer.model.config.class_names
    for distribution in result.expressions:
        assert sorted(distribution) == sorted(names)
        assert sum(distribution.values()) == pytest.approx(1, abs=1e-5)
        assert list(distribution.values()) == sorted(distribution.values(), reverse=True)
    assert result.to_dict()["expressions_a"] == pytest.approx(
        {k: round(v, 4) for k, v in result.expressions[0].items()})
    assert len(comparer.odd_one_out(astronaut, astronaut, astronaut).expressions) == 3
    # A model without a classifier gives no distribution rather than failing.
    from fecsim import checkpoint
    from fecsim.model import ModelConfig, SiameseResNet18
    from conftest import TINY_META
    bare = checkpoint.save(tmp_path / "bare.safetensors",
                           SiameseResNet18(ModelConfig()).eval(), TINY_META)
    plain = ExpressionComparer.load(bare, device="cpu").compare(astronaut, astronaut)
    assert plain.expressions == (None, None) and plain.to_dict()["expressions_a"] is None
