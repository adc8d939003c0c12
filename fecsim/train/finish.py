"""The end of every training run, whatever its data source: the int8 encoder (where the source
gives faces to set its ranges), a calibration for each encoder, the test figures, and the
checkpoint with its metadata."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import checkpoint
from ..checkpoint import Int8File, Metadata
from ..int8 import path_for as int8_path_for, quantize
from ..view import View, model_inputs


def finish_run(model, source, view: View, path, device, training: dict,
               int8: bool = True) -> Metadata:
    """Write the checkpoint at path (and NAME.int8.onnx beside it) and return its metadata.
    Test figures come from the int8 encoder where there is one, as CPU users will run it."""
    model.eval()
    view = replace(view, face=source.framing())
    calibration = source.calibrate(model, model, view, device)
    encoder, int8_file = model, None
    faces = source.range_faces() if int8 else None
    if faces is not None:
        encoder = quantize(model, model_inputs(faces, view), int8_path_for(path))
        int8_file = Int8File(encoder.path.name, encoder.sha256,
                             source.calibrate(model, encoder, view, device), len(faces))
    used = int8_file.calibration if int8_file else calibration
    meta = Metadata(view, calibration, int8_file, source.record(), training,
                    source.test_metrics(model, encoder, view, used, device))
    checkpoint.save(Path(path), model, meta)
    return meta
