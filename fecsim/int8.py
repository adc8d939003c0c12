"""An int8 copy of a model's image encoder, for CPU inference with ONNX Runtime.

The encoder (images in [0, 1] -> z, normalisation included) is exported to ONNX and quantized
statically: weights per output channel, activations to the ranges they take on a sample of faces
(ONNX Runtime calls that sample "calibration data"; here it sets the activation ranges, unrelated
to the calibration of P(same)).
On 2 AVX2 cores it embeds about twice as many faces per second as the float torch model, with the
same validation AUC (model card); that is what pays for flip averaging. Only the encoder is
quantized: the pair head is tiny and stays in torch, so (a, b) and (b, a) still agree exactly.

The int8 file sits beside its checkpoint (NAME.int8.onnx) and the checkpoint's metadata holds
its sha256, so a copy made from other weights is refused rather than silently used.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from .checkpoint import Metadata, sha256
from .errors import CheckpointError
from .files import atomic_path


class _Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.features(images)


def path_for(checkpoint_path) -> Path:
    return Path(checkpoint_path).with_suffix(".int8.onnx")


def quantize(model, faces: torch.Tensor, path) -> "Int8Encoder":
    """Quantize model's encoder with faces (N x 3 x H x W in [0, 1], as inference will see them:
    mirrored too when features are flip-averaged) setting the activation ranges; write it to path."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(faces.float().cpu().numpy(), max(1, len(faces) // 64)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    path = Path(path)
    model = _Encoder(model).to("cpu").eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the exporter's and quantizer's chatter
        float_path, prepared = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        torch.onnx.export(model, (faces[:2].float().cpu(),), str(float_path), dynamo=True,
                          input_names=["images"], output_names=["z"], external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        quant_pre_process(str(float_path), str(prepared))   # shapes, and BatchNorm folded into convs
        # reduce_range: AVX2 without VNNI adds u8 x s8 products in int16, which saturates with
        # 8-bit activations; 7 bits keep it exact.
        with atomic_path(path) as tmp_out:
            quantize_static(str(prepared), str(tmp_out), Faces(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
    return Int8Encoder(path)


class Int8Encoder:
    """z for images, like SiameseResNet18.features, from the int8 ONNX file."""

    def __init__(self, path, expected_sha256: str | None = None):
        self.path = Path(path)
        self.sha256 = sha256(self.path)
        if expected_sha256 and self.sha256 != expected_sha256:
            raise CheckpointError(source=str(self.path), reason=f"not the int8 encoder its checkpoint was exported "
                                  "with (sha256 differs); export it again with train.py, or delete it "
                                  "to run the float model")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Idle ONNX Runtime threads otherwise spin, taking the cores face detection needs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:   # onnxruntime raises its own exception types
            raise CheckpointError(source=str(self.path), reason=f"not a readable ONNX model ({exc})") from exc

    @classmethod
    def for_checkpoint(cls, checkpoint_path, meta: Metadata) -> "Int8Encoder | None":
        """The checkpoint's int8 encoder; None when it was exported without one or the file is
        missing (then the float model answers, with a warning)."""
        if meta.int8 is None:
            return None
        path = Path(checkpoint_path).parent / meta.int8.file
        if not path.is_file():
            warnings.warn(f"{path} not found: running the float model, which is slower and whose "
                          "answers differ slightly from the int8 ones it was calibrated on",
                          stacklevel=2)
            return None
        return cls(path, meta.int8.sha256)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {"images": x})[0])
