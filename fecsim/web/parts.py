"""What the tabs share: the photo, camera and result components, the uploaded files' paths, the
camera capture, and how an error reaches the page."""

from __future__ import annotations

import logging

import gradio as gr
from PIL import Image

from ..errors import FecsimError
from ..text import bounded
from . import html
from .context import AppContext

# One concurrency group for every event that runs the model (compare, odd one out, rank, the
# live mirror's reference): the queue's limit (one at a time) then holds across them all.
MODEL = "model"
MAX_ERROR = 400   # characters of an error message: it is kept per session and logged
MAX_UPLOAD_MB = 25  # a larger file is refused by gradio in the browser, with only a toast
log = logging.getLogger("fecsim.web")
CAMERA_NOTE = ("Nothing from the camera is kept unless you flag a result: frames are scored in "
               "memory, captured photos stay in this server's temporary folders for at most an "
               "hour.")


def photo_paths(ctx: AppContext, values: dict) -> dict:
    """label -> the uploaded file's path (None where none was given). The photo events skip
    gradio's preprocessing (preprocess=False), which would open every upload with PIL first and
    fail with a generic message on a non-image or an oversized photo; fecsim decodes it instead,
    safely, and says which image and why. So it also checks the file itself: only this app's
    uploads and examples, one refusal for any other path (uploads.py)."""
    try:
        return {label: ctx.uploads.path(value, label) for label, value in values.items()}
    except FecsimError as exc:
        raise page_error(str(exc)) from None


def require(paths: dict):
    missing = [label for label, path in paths.items() if not path]
    if missing:
        raise page_error(f"{' and '.join(missing)}: no photo given. Upload one (at most "
                         f"{MAX_UPLOAD_MB} MB: a larger file is refused) or capture one with the "
                         "camera.")


def user_error(exc: FecsimError, paths: dict) -> gr.Error:
    """Which of the page's images the error is about, by its label: no server paths."""
    label = next((label for label, path in paths.items() if path and exc.source == path), None)
    return page_error(f"{label}: {exc.reason}" if label else str(exc))


def page_error(message: str, title: str = "Cannot compare") -> gr.Error:
    """A user's error: bounded, logged as one line without a traceback, HTML-escaped for the
    toast (which renders HTML); `.text` keeps it as written, for the result area (html.error
    escapes it there)."""
    message = bounded(message, MAX_ERROR)
    log.warning("user error: %s", " ".join(message.split()))
    # "&" and "<" escaped: no tag or entity can start, and "x >= 1" still reads as written.
    error = gr.Error(message.replace("&", "&amp;").replace("<", "&lt;"), title=title,
                     print_exception=False)
    error.text = message
    return error


def shown_error(ctx: AppContext, request: gr.Request):
    """The last error of this session, as the result area shows it."""
    return html.error(ctx.errors.pop(request.session_hash) or "Something went wrong; try again.")


def latest_frame(frame):
    """What a camera stream keeps: its latest frame."""
    return frame


def captured(ctx: AppContext, frame):
    """The camera's latest frame as a photo file (for Capture as A / B)."""
    if frame is None:
        raise page_error("Start the camera first (the record button under the preview).",
                         title="No camera frame")
    return ctx.results.saved(Image.fromarray(frame), "jpeg")


def photo_input(label: str, elem_id: str, height: int = 280) -> gr.Image:
    return gr.Image(label=label, sources=["upload", "clipboard"], type="filepath",
                    elem_id=elem_id, height=height)


def camera(elem_id: str, height: int = 240) -> gr.Image:
    """A streaming webcam preview (mirrored, as people expect to see themselves)."""
    return gr.Image(label="Camera", sources=["webcam"], streaming=True, type="numpy",
                    elem_id=elem_id, webcam_options=gr.WebcamOptions(mirror=True), height=height)


def result_image(label: str, elem_id: str, height: int = 240) -> gr.Image:
    # Filled with files from ResultStore.saved: crops as exact PNG, photos with boxes as JPEG (a
    # photo encodes ~100x faster as JPEG than as PNG).
    return gr.Image(label=label, interactive=False, elem_id=elem_id, height=height,
                    buttons=[], elem_classes=["fecsim-crop"])
