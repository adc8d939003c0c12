"""Classroom tab: who copied it best? Photos ranked against a reference face: a table of rank,
name, score and reason (photos that could not be scored included), downloadable as CSV, and the
crops the model saw. Each capture can be named. API: /rank."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from .. import leaderboard
from ..errors import FecsimError
from ..images import check_request_pixels
from ..text import bounded
from . import html, parts
from .context import AppContext, bind, kept_for_the_page

MAX_RANKED = 60  # photos ranked at once (30 take about 2 s on 2 CPU cores)
CAMERA_EVERY = 0.2  # seconds between the frames the capture camera keeps


@kept_for_the_page
def rank(ctx: AppContext, reference, photos, request: gr.Request = None):
    """Who copied the reference's expression best? Ranks the photos by P(same expression as the
    reference), best first. Returns a gallery of their crops with captions, and the ranking as a
    list of {rank, name, probability, error}; a photo without a face is listed last with why."""
    photos = list(photos) if isinstance(photos, (list, tuple)) else [photos] if photos else []
    if len(photos) > MAX_RANKED:
        raise parts.page_error(f"At most {MAX_RANKED} photos can be ranked at once "
                               f"(got {len(photos)})")
    paths = parts.photo_paths(ctx, {"The reference": reference,
                                    **{f"Photo {i}": p for i, p in enumerate(photos, start=1)}})
    reference = paths.pop("The reference")
    parts.require({"The reference": reference})
    paths = [p for p in paths.values() if p]
    if not paths:
        raise parts.page_error("No photos to rank: upload some, or capture them with the camera")
    try:
        check_request_pixels([reference, *paths])   # the memory and time of one request
        ranked = ctx.rank(reference, paths)
    except FecsimError as exc:
        raise parts.user_error(exc, {"The reference": reference}) from None
    table = leaderboard.rows(ranked, {p: bounded(leaderboard.display_name(p)) for p in paths})
    gallery = [(ctx.results.saved(r.face.crop), f"{row['rank']}. {row['name']}: "
                f"{leaderboard.score_text(row)}") for r, row in zip(ranked, table) if r.face]
    return gallery, table


def show_ranking(ctx: AppContext, table):
    """The ranking as the page's table, and as a CSV file to download."""
    threshold = ctx.comparer.threshold
    path = ctx.results.new_path("ranking.csv")
    path.write_text(leaderboard.to_csv(table, threshold), encoding="utf-8")
    return "", html.ranking_table(table, threshold), gr.DownloadButton(value=str(path),
                                                                        visible=True)


def add_capture(ctx: AppContext, frame, photos, name):
    """The camera's latest frame added to the photos to rank, under the name typed (cleared for
    the next student)."""
    if frame is None:
        parts.captured(ctx, frame)  # says why
    photos = [p for p in parts.photo_paths(
        ctx, {f"Photo {i}": p for i, p in enumerate(photos or [], start=1)}).values() if p]
    path = ctx.results.new_path(leaderboard.capture_name(name, photos))
    Image.fromarray(frame).save(path, quality=92)
    return [*photos, str(path)], ""


def cleared_ranking():
    return "", gr.DownloadButton(visible=False)


def build(ctx: AppContext):
    with gr.Tab("Classroom: who copied it best?"):
        gr.Markdown("**Who copied it best?** One reference face and a set of photos, uploaded "
                    "together or captured one after another: they are ranked by P(same expression "
                    "as the reference). " + parts.CAMERA_NOTE)
        # As on the compare tab: the inputs on the left, the ranking beside them.
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                with gr.Row(equal_height=False):
                    reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                         type="filepath", elem_id="rank_reference", height=200)
                    photos = gr.File(label="Photos to rank", file_count="multiple",
                                     file_types=["image"], elem_id="rank_photos", height=200)
                with gr.Row(equal_height=False):
                    camera = parts.camera("rank_camera", 200)
                    with gr.Column(min_width=200):
                        name = gr.Textbox(label="Name for the next capture (optional)",
                                          elem_id="capture_name", max_length=leaderboard.MAX_NAME)
                        add_button = gr.Button("Capture into the set", elem_id="add_capture")
            with gr.Column(scale=2, min_width=320, elem_id="ranking_result"):
                rank_button = gr.Button("Rank", variant="primary", elem_id="rank")
                message = gr.HTML(elem_id="rank_message")
                table = gr.HTML(elem_id="ranking_table")
                download = gr.DownloadButton("Download the ranking (CSV)", visible=False,
                                             elem_id="ranking_csv", size="sm")
        latest = gr.State(None)
        gallery = gr.Gallery(label="The faces as the model saw them (best first)", columns=6,
                             fit_columns=False, height=220, elem_id="ranking_gallery",
                             object_fit="contain")
        with gr.Accordion("Ranking as data (what /rank returns)", open=False):
            ranking = gr.JSON(label="Ranking")

    camera.stream(parts.latest_frame, camera, latest, stream_every=CAMERA_EVERY,
                  show_progress="hidden", concurrency_limit=None, api_visibility="private")
    add_button.click(bind(add_capture, ctx), [latest, photos, name], [photos, name],
                     api_visibility="private", concurrency_limit=None)
    event = rank_button.click(bind(rank, ctx), [reference, photos], [gallery, ranking],
                              api_name="rank", preprocess=False, show_progress_on=[table],
                              concurrency_id=parts.MODEL)
    event.success(bind(show_ranking, ctx), ranking, [message, table, download], queue=False,
                  api_visibility="private")
    event.failure(bind(parts.shown_error, ctx), None, message, queue=False,
                  api_visibility="private")
    for component in (reference, photos):
        component.change(cleared_ranking, None, [table, download], queue=False,
                         api_visibility="private")
