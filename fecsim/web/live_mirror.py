"""Classroom tab: the live mirror. The webcam is scored against a reference face several times a
second; the page shows P(same expression), its recent history and the best score."""

from __future__ import annotations

import gradio as gr

from ..errors import FecsimError
from ..live import score_frame
from . import html, parts
from .context import AppContext, bind, kept_for_the_page
from .results import distinct_photos, example_files

LIVE_EVERY = 0.1  # seconds between the frames the live mode sends
LIVE_HISTORY = 60  # scores kept for the live mode's history line


def live_frame(ctx: AppContext, frame, reference, track, history, best):
    """One webcam frame of the live mirror mode: P(same expression as the reference), updated
    score history and best score, and the frame itself (to take as a reference). The face is
    tracked from the previous frame's box."""
    if frame is None or reference is None:
        return gr.skip(), track, history, best, frame
    scored = score_frame(ctx.comparer, reference["z"], frame, near=track)
    history = (history or [])[-(LIVE_HISTORY - 1):] + [scored.probability]
    if scored.probability is not None:
        best = max(best or 0.0, scored.probability)
    return (html.live_score(scored.probability, history, best, ctx.comparer.threshold),
            scored.box, history, best, frame)


@kept_for_the_page
def set_reference(ctx: AppContext, image, request: gr.Request = None):
    """Embed the reference face once for the live mode; returns (its crop, the state)."""
    path = parts.path_of(image)
    if not path:
        return None, None, None, None
    try:
        face = ctx.comparer.face(path)
    except FecsimError as exc:
        raise parts.user_error(exc, {"The reference": path}) from None
    z = ctx.comparer.features([face])
    return ctx.results.saved(face.crop), {"z": z}, [], None


def build(ctx: AppContext):
    with gr.Tab("Classroom: live mirror"):
        gr.Markdown("## Copy the face!\nChoose a reference face, start the camera, and "
                    "watch P(same expression) move as you copy it. " + parts.CAMERA_NOTE)
        with gr.Row():
            with gr.Column():
                reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                     type="filepath", elem_id="reference", height=240)
                use_frame = gr.Button("Use the camera's face as the reference",
                                      elem_id="use_frame")
                reference_crop = parts.result_image("Reference crop", "reference_crop", 160)
            with gr.Column():
                live_camera = parts.camera("live_camera")
                live_score = gr.HTML(elem_id="live_score")
        reference_state, track, history, best = (gr.State(None) for _ in range(4))
        latest = gr.State(None)
        gr.Examples(distinct_photos(example_files("pairs")), [reference],
                    label="Example reference faces", cache_examples=False)

    # The reference is embedded once; each frame is scored against it.
    reference.change(bind(set_reference, ctx), reference,
                     [reference_crop, reference_state, history, best], preprocess=False,
                     api_visibility="private"
                     ).failure(bind(parts.shown_error, ctx), None, live_score, queue=False,
                               api_visibility="private")
    use_frame.click(bind(parts.captured, ctx), latest, reference, api_visibility="private",
                    concurrency_limit=None)
    live_camera.stream(bind(live_frame, ctx), [live_camera, reference_state, track, history, best],
                       [live_score, track, history, best, latest],
                       stream_every=LIVE_EVERY, concurrency_id="live", show_progress="hidden",
                       concurrency_limit=1, api_visibility="private")
