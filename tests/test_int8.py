"""The int8 encoder: exported from a model, it answers like the model, per face, and a checkpoint
only ever runs the int8 copy that was exported with it."""
from dataclasses import replace

import pytest
import torch
from PIL import Image

from fecsim import ExpressionComparer, checkpoint, int8
from fecsim.errors import CheckpointError
from fecsim.model import ModelConfig, SiameseResNet18

from conftest import TINY_META

pytestmark = pytest.mark.slow


def faces(n, seed):
    """Face-like inputs: smooth grey blobs, the same in all three channels."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g)
    return torch.nn.functional.interpolate(low, size=48, mode="bilinear").expand(-1, 3, -1, -1)


def picture(face: torch.Tensor) -> Image.Image:
    return Image.fromarray((face[0] * 255).round().byte().numpy())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight model, its checkpoint and the int8 encoder exported beside it."""
    torch.manual_seed(0)
    model = SiameseResNet18(ModelConfig()).eval()
    path = tmp_path_factory.mktemp("int8") / "model.safetensors"
    encoder = int8.quantize(model, faces(64, seed=0), int8.path_for(path))
    checkpoint.save(path, model, dict(TINY_META, int8={"file": encoder.path.name,
                                                       "sha256": encoder.sha256}))
    return model, path, encoder


def test_int8_encoder_answers_like_the_float_model(exported):
    model, _, encoder = exported
    x = faces(32, seed=1)   # not the faces that set the activation ranges
    with torch.no_grad():
        expected = model.features(x)
    got = encoder.features(x)
    assert got.shape == expected.shape
    assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.99


def test_int8_features_of_a_face_do_not_depend_on_its_batch(exported):
    _, _, encoder = exported
    x = faces(8, seed=2)
    assert torch.equal(encoder.features(x)[3:4], encoder.features(x[3:4]))


def test_comparer_runs_the_int8_encoder_on_the_cpu(exported):
    _, path, _ = exported
    comparer = ExpressionComparer.load(path, "cpu")
    assert isinstance(comparer.encoder, int8.Int8Encoder)
    assert not isinstance(ExpressionComparer.load(path, "cpu", int8=False).encoder,
                          int8.Int8Encoder)
    x = faces(2, seed=4)
    before = comparer.encoder.features(x)
    assert torch.equal(comparer.to("cpu").encoder.features(x), before)   # moving again: same answers


def test_flip_averaged_int8_answers_are_mirror_invariant(exported):
    _, path, _ = exported
    comparer = ExpressionComparer.load(path, "cpu")
    a, b = faces(2, seed=3).unbind()
    p = comparer.compare(picture(a), picture(b), assume_cropped=True).probability
    mirrored = comparer.compare(picture(a.flip(-1)), picture(b), assume_cropped=True).probability
    assert p == pytest.approx(mirrored, abs=1e-6)


def test_an_int8_file_from_other_weights_is_refused(exported, tmp_path):
    model, path, encoder = exported
    other = tmp_path / path.name
    checkpoint.save(other, model, replace(checkpoint.read_meta(path),
                                          int8=checkpoint.Int8File(encoder.path.name, "0" * 64)))
    int8.path_for(other).write_bytes(encoder.path.read_bytes())
    with pytest.raises(CheckpointError, match=r"model\.int8\.onnx.*sha256"):
        ExpressionComparer.load(other, "cpu")


def test_a_missing_int8_file_falls_back_to_the_float_model_with_a_warning(exported, tmp_path):
    _, path, _ = exported
    alone = tmp_path / path.name
    alone.write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="model.int8.onnx not found"):
        comparer = ExpressionComparer.load(alone, "cpu")
        assert not isinstance(comparer.encoder, int8.Int8Encoder)
        with pytest.raises(CheckpointError, match="no int8 encoder"):
            ExpressionComparer.load(alone, "cpu", int8=True)


def test_a_file_that_is_not_onnx_is_refused_with_its_name(tmp_path):
    bogus = tmp_path / "model.int8.onnx"
    bogus.write_text("not a model")
    with pytest.raises(CheckpointError, match=r"model\.int8\.onnx: not a readable ONNX model"):
        int8.Int8Encoder(bogus)
