"""Classroom tab: the live mirror. Each page's webcam is scored against its own reference face
several times a second, many pages at once (the context's LiveRoom shares the model out); the page
shows the score beside the frame it belongs to, the verdict in words, the recent scores and the
best one, and "Next student" starts them again."""

from __future__ import annotations

import gradio as gr

from ..errors import FecsimError
from . import live_html, parts
from .context import AppContext, bind, kept_for_the_page
from .. import shipped_examples

LIVE_EVERY = 0.1  # seconds between the frames the live mode sends


def live_frame(ctx: AppContext, frame, request: gr.Request):
    """One webcam frame: the score panel, and the frame itself (to take as a reference)."""
    reading = None if frame is None else ctx.live.score(request.session_hash, frame)
    if reading is None:  # no frame, or this page's previous frame is still in work
        return gr.skip(), frame
    return live_html.live_panel(reading, ctx.comparer.threshold), frame


def next_student(ctx: AppContext, request: gr.Request):
    """Same reference, a new person: the best score, the line and the count start again."""
    ctx.live.next_student(request.session_hash)
    return live_html.NEXT_STUDENT


@kept_for_the_page
def set_reference(ctx: AppContext, image, request: gr.Request):
    """Embed the reference face once for this page's live mirror; returns its crop."""
    path = parts.photo_paths(ctx, {"The reference": image})["The reference"]
    if not path:
        ctx.live.set_reference(request.session_hash, None)
        return None
    try:
        face = ctx.comparer.face(path)
    except FecsimError as exc:
        raise parts.user_error(exc, {"The reference": path}) from None
    ctx.live.set_reference(request.session_hash, ctx.comparer.features([face]))
    return ctx.results.saved(face.crop)


def build(ctx: AppContext):
    with gr.Tab("Classroom: live mirror"):
        gr.Markdown("**Copy the face!** Choose a reference face, start the camera, and watch "
                    "P(same expression) move as you copy it. " + parts.CAMERA_NOTE)
        # Reference, camera and score side by side: on a 1280x720 projector all in view.
        with gr.Row(equal_height=False):
            with gr.Column(min_width=260):
                reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                     type="filepath", elem_id="reference", height=200)
                use_frame = gr.Button("Use the camera's face as the reference",
                                      elem_id="use_frame")
                reference_crop = parts.result_image("Reference crop", "reference_crop", 120)
            with gr.Column(min_width=260):
                live_camera = parts.camera("live_camera", 200)
                next_button = gr.Button("Next student", elem_id="next_student")
            with gr.Column(min_width=300):
                live_score = gr.HTML(elem_id="live_score", js_on_load=live_html.PAGE_HOOKS)
        latest = gr.State(None)
        gr.Examples([[p] for p in shipped_examples.photos()], [reference],
                    label="Example reference faces", cache_examples=False)

    # The reference is embedded once; each frame is scored against it.
    reference.change(bind(set_reference, ctx), reference, reference_crop, preprocess=False,
                     api_visibility="private", concurrency_id=parts.MODEL
                     ).failure(bind(parts.shown_error, ctx), None, live_score, queue=False,
                               api_visibility="private")
    next_button.click(bind(next_student, ctx), None, live_score, queue=False,
                      api_visibility="private")
    use_frame.click(bind(parts.captured, ctx), latest, reference, api_visibility="private",
                    concurrency_limit=None)
    # Pages stream side by side, queued behind nothing: the live room shares the model out (one
    # frame in work per page, a line beyond its capacity), so gradio holds none of them back.
    live_camera.stream(bind(live_frame, ctx), live_camera, [live_score, latest],
                       stream_every=LIVE_EVERY, concurrency_id="live", show_progress="hidden",
                       concurrency_limit=None, api_visibility="private")
