"""What the tabs share: the photo, camera and result components, the uploaded file's path, the
camera capture, and how an error reaches the page."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from ..errors import FecsimError
from . import html
from .context import AppContext

CAMERA_NOTE = ("Nothing from the camera is kept unless you flag a result: frames are scored in "
               "memory, captured photos live only in this server's temporary cache.")


def path_of(value):
    """The uploaded file's path. The photo events skip gradio's preprocessing (preprocess=False),
    which would open every upload with PIL first and fail with a generic message on a non-image
    or an oversized photo; fecsim decodes it instead, safely, and says which image and why."""
    if isinstance(value, dict):
        return value.get("path")
    return value


def require(paths: dict):
    missing = [label for label, path in paths.items() if not path]
    if missing:
        raise page_error(f"{' and '.join(missing)}: no photo given (upload one, or capture one "
                         "with the camera)")


def user_error(exc: FecsimError, paths: dict) -> gr.Error:
    """Which of the page's images the error is about, by its label: no server paths."""
    label = next((label for label, path in paths.items() if path and exc.source == path), None)
    return page_error(f"{label}: {exc.reason}" if label else str(exc))


def page_error(message: str) -> gr.Error:
    return gr.Error(message, title="Cannot compare")


def shown_error(ctx: AppContext, request: gr.Request):
    """The last error of this session, as the result area shows it."""
    return html.error(ctx.errors.pop(request.session_hash) or "Something went wrong; try again.")


def latest_frame(frame):
    """What a camera stream keeps: its latest frame."""
    return frame


def captured(ctx: AppContext, frame):
    """The camera's latest frame as a photo file (for Capture as A / B)."""
    if frame is None:
        raise gr.Error("Start the camera first (the record button under the preview).",
                       title="No camera frame")
    return ctx.results.saved(Image.fromarray(frame), "jpeg")


def photo_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, sources=["upload", "clipboard"], type="filepath",
                    elem_id=elem_id, height=280)


def camera(elem_id: str) -> gr.Image:
    """A streaming webcam preview (mirrored, as people expect to see themselves)."""
    return gr.Image(label="Camera", sources=["webcam"], streaming=True, type="numpy",
                    elem_id=elem_id, webcam_options=gr.WebcamOptions(mirror=True), height=240)


def result_image(label: str, elem_id: str, height: int = 240) -> gr.Image:
    # Filled with files from ResultStore.saved: crops as exact PNG, photos with boxes as JPEG (a
    # photo encodes ~100x faster as JPEG than as PNG).
    return gr.Image(label=label, interactive=False, elem_id=elem_id, height=height,
                    buttons=[], elem_classes=["fecsim-crop"])
