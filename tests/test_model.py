"""Model and checkpoints: a/b symmetry, round trip, every broken checkpoint, the offline thesis."""
import json
import re
import struct

import pytest
import torch

from conftest import TINY_META
from fecsim import ExpressionComparer, checkpoint
from fecsim.errors import CheckpointError, FecsimError
from fecsim.model import ModelConfig, SiameseResNet18


@pytest.mark.parametrize("head", ["similarity", "concat"])
def test_answer_for_a_b_equals_answer_for_b_a(head):
    torch.manual_seed(1)
    model = SiameseResNet18(ModelConfig(head=head, pair_hidden=32)).eval()
    a, b = torch.rand(5, 3, 48, 48), torch.rand(5, 3, 48, 48)
    with torch.no_grad():
        ab, ba = model(a, b), model(b, a)
    assert ab.shape == (5,)
    assert torch.allclose(torch.sigmoid(ab), torch.sigmoid(ba), atol=1e-6)
    assert not torch.allclose(ab, ab[torch.tensor([1, 0, 2, 3, 4])])  # not a constant


def test_embeddings_are_unit_length():
    model = SiameseResNet18(ModelConfig(embed_dim=16)).eval()
    with torch.no_grad():
        e = model.embed(torch.rand(3, 3, 48, 48))
    assert e.shape == (3, 16) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_frozen_trunk_stays_frozen_in_train_mode():
    model = SiameseResNet18(ModelConfig(head="concat"), freeze_trunk=True).train()
    assert not model.trunk.training and model.pair_head.training
    assert not any(p.requires_grad for p in model.trunk.parameters())


def test_thesis_preset_offline_fails_with_a_clear_message(monkeypatch):
    from urllib.error import URLError

    import fecsim.model as model_module

    def no_network(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(model_module, "resnet18", no_network)
    with pytest.raises(FecsimError, match="ImageNet weights for ResNet18 could not be downloaded"):
        SiameseResNet18(ModelConfig(head="concat"), imagenet=True)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    model = SiameseResNet18(ModelConfig(num_classes=7, class_names=list("abcdefg"))).eval()
    meta = {"input_size": 48, "calibration": {"scale": 2.0, "bias": -0.5, "threshold": 0.4}}
    path = checkpoint.save(tmp_path / "m.safetensors", model, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta.calibration == meta["calibration"]
    assert loaded_meta.model.class_names == list("abcdefg")
    x, y = torch.rand(4, 3, 48, 48), torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        # fp16 storage: answers agree to well within what a probability shows
        assert torch.allclose(torch.sigmoid(model(x, y)), torch.sigmoid(loaded(x, y)), atol=2e-3)
    assert path.stat().st_size < 50e6
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: checkpoint file not found"):
        checkpoint.load(tmp_path / "nope.safetensors")


def test_truncated_checkpoint(tmp_path, random_checkpoint):
    path = tmp_path / "cut.safetensors"
    data = random_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: (truncated|not a readable)"):
        checkpoint.load(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable safetensors"):
        checkpoint.load(path)


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        checkpoint.load(path)


def _rewrite_meta(src, dst, change):
    """Copy a safetensors file with its fecsim metadata edited."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["fecsim"])
    change(meta, header)
    header["__metadata__"]["fecsim"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def test_incompatible_format(tmp_path, random_checkpoint):
    path = tmp_path / "future.safetensors"
    _rewrite_meta(random_checkpoint, path, lambda m, h: m.update(format="fecsim-99"))
    with pytest.raises(CheckpointError, match=r"future\.safetensors: format 'fecsim-99'"):
        checkpoint.load(path)


def test_weights_that_do_not_fit_the_described_model(tmp_path, random_checkpoint):
    path = tmp_path / "wrong.safetensors"
    _rewrite_meta(random_checkpoint, path, lambda m, h: m["model"].update(embed_dim=64))
    with pytest.raises(CheckpointError, match=r"wrong\.safetensors: weights do not fit"):
        checkpoint.load(path)


def test_safetensors_without_fecsim_metadata(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without fecsim metadata"):
        checkpoint.load(path)


# --- Reliability (README): metadata checked as a whole on load. ---

def _with(change):
    meta = json.loads(json.dumps(TINY_META))
    change(meta)
    return meta


@pytest.mark.parametrize("change, field", [
    (lambda m: m.pop("calibration"), "calibration"),
    (lambda m: m.pop("input_size"), "input_size"),
    (lambda m: m.update(input_size=-5), "input_size"),
    (lambda m: m.update(input_size="64"), "input_size"),
    (lambda m: m["calibration"].pop("threshold"), "calibration.threshold"),
    (lambda m: m["calibration"].update(scale=float("nan")), "calibration.scale"),
    (lambda m: m.update(grey="yes"), "grey"),
    (lambda m: m.update(zoom=0), "zoom"),
    (lambda m: m.update(face=[0.1]), "face"),
    (lambda m: m["face"].update(source_size=-48), "face.source_size"),
    (lambda m: m.update(int8={"file": "../elsewhere.onnx", "sha256": "0" * 64}), "int8.file"),
    (lambda m: m.update(int8={"file": "/etc/passwd", "sha256": "0" * 64}), "int8.file"),
    (lambda m: m.update(int8={"file": "sub/x.int8.onnx", "sha256": "0" * 64}), "int8.file"),
    (lambda m: m.update(int8={"file": "x.int8.onnx"}), "int8.sha256"),
])
def test_bad_metadata_is_a_checkpoint_error_naming_the_field(tmp_path, change, field):
    path = checkpoint.save(tmp_path / "bad.safetensors", SiameseResNet18(ModelConfig()).eval(),
                           _with(change))
    with pytest.raises(CheckpointError, match=rf"bad\.safetensors: .*metadata field {re.escape(field)}\b"):
        ExpressionComparer.load(path, "cpu")
