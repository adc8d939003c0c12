"""Tab 1: compare two photos (uploaded, or captured with one camera as A and B): the verdict, its
probability against the threshold, the crops the model saw with their expressions, the face boxes
and the time taken, and a flag for a wrong answer (with consent) for relabelling. API: /compare,
/flag."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from ..errors import BoxError, FecsimError
from ..faces import parse_box, parse_face_number
from ..flags import ANSWERS, CONSENT_TEXT, kept_until
from ..text import MAX_TEXT_INPUT
from . import html, parts
from .context import AppContext, bind, kept_for_the_page
from ..shipped_examples import pairs as example_pairs
from .results import draw_boxes

SAME, DIFFERENT = list(ANSWERS)
FLAG_TITLE = "Not flagged"
CAMERA_EVERY = 0.2  # seconds between the frames a capture camera keeps


def choose_box(ctx: AppContext, path: str, box_text, face_number, label: str):
    """The box to use for one photo: the typed box, else the chosen detected face, else None
    (the largest face). Returns (box, every detected box or None when detection was skipped,
    which face: "box" or its number)."""
    box = parse_box(box_text, label)
    if box is not None:
        return box, None, "box"
    n = parse_face_number(face_number, label)
    if n == 1:
        return None, None, 1
    found = ctx.comparer.face(path).found
    if n > len(found):
        raise BoxError(source=label, reason=f"face {n} was asked for but {len(found)} face"
                       f"{'s were' if len(found) != 1 else ' was'} found")
    return found[n - 1], found, n


def too_small(ctx: AppContext, image, found: list) -> int:
    """How many faces the photo holds besides those found, too small for detection to use (a
    group photo's back row): a finer search counts them."""
    if not found:   # a typed box: nothing was searched
        return 0
    return max(0, len(ctx.comparer.cropper.detect(image, finer=True)) - len(found))


@kept_for_the_page
def compare(ctx: AppContext, image_a, image_b, box_a=None, box_b=None, face_a=None, face_b=None,
            request: gr.Request = None):
    """Compare two photos: do they show the same facial expression?

    Only the two photos are needed. box_a/box_b: optional "x0, y0, x1, y1" in pixels; face_a/
    face_b: which detected face to use (1 = the largest, the default). Returns the photos with
    their face boxes, the two crops the model saw, each face's expression distribution, the
    details (probability, verdict, threshold, boxes, faces found, expressions, seconds) and the
    state used for flagging.
    """
    start = time.perf_counter()
    paths = parts.photo_paths(ctx, {"Image A": image_a, "Image B": image_b})
    image_a, image_b = paths.values()
    parts.require(paths)
    try:
        chosen_a, found_a, used_a = choose_box(ctx, image_a, box_a, face_a, "Image A")
        chosen_b, found_b, used_b = choose_box(ctx, image_b, box_b, face_b, "Image B")
        result = ctx.compare(image_a, image_b, chosen_a, chosen_b)
    except FecsimError as exc:
        raise parts.user_error(exc, paths) from None
    fa, fb = result.faces
    comparer = ctx.comparer
    details = dict(result.to_dict(), model_seconds=round(result.seconds, 3),
                   faces_found_a=[list(b) for b in (found_a if found_a is not None else fa.found)],
                   faces_found_b=[list(b) for b in (found_b if found_b is not None else fb.found)],
                   checkpoint=comparer.path.name, checkpoint_sha256=comparer.sha256,
                   face_a=used_a, face_b=used_b)
    details["too_small_a"], details["too_small_b"] = comparer.detect_pool.map(
        lambda k: too_small(ctx, result.faces["ab".index(k)].image, details[f"faces_found_{k}"]),
        "ab")
    # Drawn on the photo as the model worked on it (a large one reduced): boxes scaled to it.
    boxed = [ctx.results.saved(draw_boxes(f.image, f.on_image(f.box),
                                          [f.on_image(b) for b in details[f"faces_found_{k}"]]),
                               "jpeg")
             for f, k in ((fa, "a"), (fb, "b"))]
    crops = [ctx.results.saved(fa.crop), ctx.results.saved(fb.crop)]
    details["seconds"] = round(time.perf_counter() - start, 3)  # on the server: the model,
    last = {"original_a": image_a, "original_b": image_b, "crop_a": fa.crop,  # detection, files
            "crop_b": fb.crop, "result": details, "flagged": False}
    return (*boxed, *crops, _distribution(result.expressions[0]),
            _distribution(result.expressions[1]), details, last)


def _distribution(expressions):
    """A face's expression distribution for gr.Label (None for a model without a classifier)."""
    return None if expressions is None else dict(expressions)


def flag(ctx: AppContext, state, answer, agreed):
    """Store the last result as wrong, with the user's answer, for relabelling. Stores
    nothing unless agreed is True: both photos (without their metadata), both crops and the
    answers are kept, with the consent."""
    if not state:
        raise parts.page_error("Compare two photos first; then flag the result.", FLAG_TITLE)
    if state["flagged"]:
        raise parts.page_error("This result is already flagged.", FLAG_TITLE)
    if answer not in ANSWERS:
        raise parts.page_error(f"Choose the right answer first ({SAME} or {DIFFERENT}).", FLAG_TITLE)
    if agreed is not True:
        raise parts.page_error("Nothing was stored: tick the box to agree to storing the photos.",
                               FLAG_TITLE)
    try:
        ctx.logger.flag([state["original_a"], state["original_b"], state["crop_a"],
                         state["crop_b"], state["result"]], flag_option=answer, consent=True)
    except FecsimError as exc:   # the disk: "nothing was stored", and why
        raise parts.page_error(f"{exc.reason[0].upper()}{exc.reason[1:]}.", FLAG_TITLE) from None
    state = dict(state, flagged=True)
    return f"Flagged: the right answer is **{answer}**. Thank you.", state


def example_pair(index: int):
    """The photos of the example clicked (then compared at once)."""
    return example_pairs()[index].photos


def show_verdict(details):
    """The verdict in the result area, the flag panel opened and reset."""
    return html.verdict(details), gr.Group(visible=True), "", None, False


def cleared_result():
    """A changed input clears the old result and the flag panel: a flag can only ever store the
    pair that is on the screen."""
    return (*[None] * 7, "", None, gr.Group(visible=False), "", False)


def storage_note(flag_dir: Path) -> str:
    return ("Flagging is optional and stores nothing until you tick the box. If you flag, both "
            "photos (upright, without their metadata: no place, no camera), both face crops "
            "shown above, the model's answer and yours are stored "
            f"{kept_until(flag_dir)}, to relabel and retrain the model.")


def expressions(label: str, elem_id: str) -> gr.Label:
    """A face's top 3 expressions, from the model's classifier."""
    return gr.Label(label=label, num_top_classes=3, elem_id=elem_id, show_heading=False)


def build(ctx: AppContext):
    with gr.Tab("Compare", id="compare_tab"):
        # Inputs on the left, the result beside them (and kept in view while the page scrolls):
        # at 1280x720 a whole capture round needs no scrolling. On a phone they stack.
        with gr.Row(equal_height=False, elem_id="compare_layout"):
            with gr.Column(scale=3, min_width=320, elem_id="compare_inputs"):
                with gr.Row(equal_height=False):
                    image_a = parts.photo_input("Image A", "image_a", 200)
                    image_b = parts.photo_input("Image B", "image_b", 200)
                    with gr.Column(min_width=220):
                        camera = parts.camera("camera", 200)
                        with gr.Row():
                            capture_a = gr.Button("Capture as A", elem_id="capture_a", min_width=100)
                            capture_b = gr.Button("Capture as B", elem_id="capture_b", min_width=100)
                        countdown = gr.Checkbox(False, label="3-second countdown",
                                                elem_id="countdown")
                        gr.HTML('<div id="countdown_display" class="fecsim-live"></div>')
                latest_frame = gr.State(None)
                examples = gr.Dataset(
                    components=[gr.Image(visible=False), gr.Image(visible=False),
                                gr.Textbox(visible=False)],
                    samples=[[*e.photos, e.caption] for e in example_pairs()],
                    headers=["A", "B", "What to expect"], type="index",
                    label="Examples: click one to compare it", elem_id="pair_examples",
                    samples_per_page=8, layout="table")
                with gr.Accordion("Choose the face (optional)", open=False, elem_id="choose_face"):
                    gr.Markdown("The largest face is used. Type a box in pixels, or "
                                "pick another detected face by its number on the "
                                "result (1 = largest).")
                    with gr.Row():
                        box_a = gr.Textbox(label="Box in A (x0, y0, x1, y1)", elem_id="box_a",
                                           max_length=MAX_TEXT_INPUT)
                        box_b = gr.Textbox(label="Box in B (x0, y0, x1, y1)", elem_id="box_b",
                                           max_length=MAX_TEXT_INPUT)
                    with gr.Row():
                        face_a = gr.Number(1, label="Face in A", precision=0, minimum=1)
                        face_b = gr.Number(1, label="Face in B", precision=0, minimum=1)
            with gr.Column(scale=2, min_width=320, elem_id="result"):
                compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
                verdict = gr.HTML(elem_id="verdict", min_height=0)
                with gr.Row(equal_height=False):
                    with gr.Column(min_width=140):
                        crop_a = parts.result_image("Crop A (model's view)", "crop_a", 140)
                        expressions_a = expressions("Expression in A", "expressions_a")
                    with gr.Column(min_width=140):
                        crop_b = parts.result_image("Crop B (model's view)", "crop_b", 140)
                        expressions_b = expressions("Expression in B", "expressions_b")
        with gr.Row():
            boxed_a = parts.result_image("Faces found in A (1 = largest)", "boxed_a")
            boxed_b = parts.result_image("Faces found in B (1 = largest)", "boxed_b")
        with gr.Accordion("Details", open=False):
            details = gr.JSON(label="Details")
        last = gr.State(None)
        with gr.Group(visible=False) as flag_panel:
            gr.Markdown(f"**Wrong answer?** {storage_note(ctx.flag_dir)}")
            with gr.Row():
                right_answer = gr.Radio([SAME, DIFFERENT], label="The right answer",
                                        elem_id="right_answer")
                consent = gr.Checkbox(False, elem_id="consent", label=CONSENT_TEXT)
                flag_button = gr.Button("Flag this result as wrong", elem_id="flag")
            flag_status = gr.Markdown(elem_id="flag_status")

    inputs = [image_a, image_b, box_a, box_b, face_a, face_b]
    results = [boxed_a, boxed_b, crop_a, crop_b, expressions_a, expressions_b, details]
    shown = [verdict, flag_panel, flag_status, right_answer, consent]
    _wire_compare(ctx, compare_button.click, inputs, [*results, last], shown, "compare")
    for component in inputs:
        component.change(cleared_result, None,
                         [*results, verdict, last, flag_panel, flag_status, consent],
                         queue=False, api_visibility="private")
    flag_button.click(bind(flag, ctx), [last, right_answer, consent], [flag_status, last],
                      api_name="flag")

    # One camera for both photos: the stream keeps its latest frame; Capture as A / B take
    # it (after the countdown, when ticked), and B's capture starts the comparison itself.
    camera.stream(parts.latest_frame, camera, latest_frame, stream_every=CAMERA_EVERY,
                  show_progress="hidden", concurrency_limit=None, api_visibility="private")
    for button, image in ((capture_a, image_a), (capture_b, image_b)):
        taken = button.click(None, countdown, None, js=html.COUNTDOWN).then(
            bind(parts.captured, ctx), latest_frame, image, api_visibility="private",
            concurrency_limit=None)
    _wire_compare(ctx, taken.success, inputs, [*results, last], shown)  # B captured: compare
    loaded = examples.click(example_pair, examples, [image_a, image_b], queue=False,
                            api_visibility="private")
    _wire_compare(ctx, loaded.then, inputs, [*results, last], shown)  # an example runs at once


def _wire_compare(ctx: AppContext, trigger, inputs, outputs, shown, api_name=None):
    """Compare, then show the verdict (or the error, which stays) in the result area."""
    verdict, details = shown[0], outputs[-2]
    # Progress (and gradio's own error badge) on the result area alone, not on each field.
    event = trigger(bind(compare, ctx), inputs, outputs, api_name=api_name,
                    api_visibility="public" if api_name else "private",
                    preprocess=False, js=html.START_CLOCK, show_progress_on=[verdict],
                    concurrency_id=parts.MODEL)
    event.success(show_verdict, details, shown, queue=False, api_visibility="private"
                  ).then(None, js=html.SHOW_WAITED)
    event.failure(bind(parts.shown_error, ctx), None, verdict, queue=False,
                  api_visibility="private")
