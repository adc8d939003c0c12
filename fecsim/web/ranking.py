"""Classroom tab: who copied it best? Photos ranked against a reference face. API: /rank."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from ..errors import FecsimError
from . import parts
from .context import AppContext, bind, kept_for_the_page

MAX_RANKED = 60  # photos ranked at once (30 take about 2 s on 2 CPU cores)
CAMERA_EVERY = 0.2  # seconds between the frames the capture camera keeps


@kept_for_the_page
def rank(ctx: AppContext, reference, photos, request: gr.Request = None):
    """Who copied the reference's expression best? Ranks the photos by P(same expression as the
    reference), best first. Returns a gallery of their crops with captions, and the ranking as a
    list of {rank, name, probability, error}; a photo without a face is listed last with why."""
    reference = parts.path_of(reference)
    paths = [parts.path_of(p) for p in photos or []]
    parts.require({"The reference": reference})
    if not paths:
        raise parts.page_error("No photos to rank: upload some, or capture them with the camera")
    if len(paths) > MAX_RANKED:
        raise parts.page_error(f"At most {MAX_RANKED} photos can be ranked at once "
                               f"(got {len(paths)})")
    try:
        ranked = ctx.rank(reference, paths)
    except FecsimError as exc:
        raise parts.user_error(exc, {"The reference": reference}) from None
    names = {p: Path(p).name for p in paths}
    table, gallery = [], []
    for i, r in enumerate(ranked, start=1):
        name = names[r.source]
        table.append({"rank": i if r.probability is not None else None, "name": name,
                      "probability": None if r.probability is None else round(r.probability, 4),
                      "error": r.error})
        if r.face is not None:
            gallery.append((ctx.results.saved(r.face.crop), f"{i}. {name}: {r.probability:.0%}"))
    return gallery, table


def add_capture(ctx: AppContext, frame, photos):
    """The camera's latest frame added to the photos to rank."""
    if frame is None:
        parts.captured(ctx, frame)  # says why
    photos = [parts.path_of(p) for p in photos or []]
    path = ctx.results.capture_path(len(photos) + 1)
    Image.fromarray(frame).save(path, quality=92)
    return [*photos, str(path)]


def cleared_message():
    return ""


def build(ctx: AppContext):
    with gr.Tab("Classroom: who copied it best?"):
        gr.Markdown("## Who copied it best?\nOne reference face and a set of photos, "
                    "uploaded together or captured one after another: they are ranked by "
                    "P(same expression as the reference). " + parts.CAMERA_NOTE)
        with gr.Row():
            reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                 type="filepath", elem_id="rank_reference", height=240)
            photos = gr.File(label="Photos to rank", file_count="multiple",
                             file_types=["image"], elem_id="rank_photos")
            with gr.Column():
                camera = parts.camera("rank_camera")
                add_button = gr.Button("Capture into the set", elem_id="add_capture")
        latest = gr.State(None)
        rank_button = gr.Button("Rank", variant="primary", elem_id="rank")
        message = gr.HTML(elem_id="rank_message")
        gallery = gr.Gallery(label="Ranking (best first)", columns=5, height="auto",
                             elem_id="ranking_gallery", object_fit="contain")
        with gr.Accordion("Ranking as a table", open=False):
            ranking = gr.JSON(label="Ranking")

    camera.stream(parts.latest_frame, camera, latest, stream_every=CAMERA_EVERY,
                  show_progress="hidden", concurrency_limit=None, api_visibility="private")
    add_button.click(bind(add_capture, ctx), [latest, photos], photos,
                     api_visibility="private", concurrency_limit=None)
    event = rank_button.click(bind(rank, ctx), [reference, photos], [gallery, ranking],
                              api_name="rank", preprocess=False, show_progress_on=[gallery])
    event.success(cleared_message, None, message, queue=False, api_visibility="private")
    event.failure(bind(parts.shown_error, ctx), None, message, queue=False,
                  api_visibility="private")
