"""Tab 2: which of three faces has the odd expression out (the task of Google's FEC dataset)?
API: /odd_one_out."""

from __future__ import annotations

import time

import gradio as gr

from ..errors import FecsimError
from . import parts
from .context import AppContext, bind, kept_for_the_page
from .. import shipped_examples


@kept_for_the_page
def odd_one_out(ctx: AppContext, image_1, image_2, image_3, request: gr.Request = None):
    """Which of three photos shows the odd expression out? Returns the three crops the model
    saw (the odd one highlighted), the answer, P(same expression) of each pair, and details."""
    start = time.perf_counter()
    paths = parts.photo_paths(ctx, {"Image 1": image_1, "Image 2": image_2, "Image 3": image_3})
    image_1, image_2, image_3 = paths.values()
    parts.require(paths)
    try:
        result = ctx.odd_one_out(image_1, image_2, image_3, (None, None, None))
    except FecsimError as exc:
        raise parts.user_error(exc, paths) from None
    pairs = {f"Images {k[0]} and {k[1]}": round(v, 4) for k, v in result.probabilities.items()}
    details = dict(result.to_dict(), seconds=round(time.perf_counter() - start, 3))
    answer = f"Image {result.odd} is the odd one out"
    return (*(ctx.results.saved(f.crop) for f in result.faces), answer, pairs, details)


def highlight_odd(details):
    """The odd face's crop outlined and labelled (on the page only: the API returns plain files)."""
    return [gr.Image(elem_classes=["fecsim-crop"] + (["fecsim-odd"] if i == details["odd"] else []),
                     label=f"Face {i}" + (": the odd one out" if i == details["odd"] else ""))
            for i in (1, 2, 3)]


def example_triplet(index: int):
    """The photos of the example clicked (then run at once)."""
    return shipped_examples.triplets()[index].photos


def cleared_result():
    """A changed photo clears the old answer."""
    return None, None, None, "", None, None


def build(ctx: AppContext):
    with gr.Tab("Odd one out"):
        gr.Markdown("## Which face's expression is the odd one out?\nThree photos; the "
                    "model says which expression differs from the other two (the task of "
                    "Google's FEC dataset).")
        with gr.Row():
            trio = [parts.photo_input(f"Image {i}", f"image_{i}") for i in (1, 2, 3)]
        odd_button = gr.Button("Find the odd one out", variant="primary", elem_id="odd")
        answer = gr.HTML(elem_id="odd_answer")
        with gr.Row():
            crops = [parts.result_image(f"Face {i}", f"crop_{i}", 200) for i in (1, 2, 3)]
        pair_probabilities = gr.Label(label="P(same expression) of each pair",
                                      elem_id="pair_probabilities", show_heading=False)
        with gr.Accordion("Details", open=False):
            details = gr.JSON(label="Details")
        samples = gr.Dataset(
            components=[gr.Image(visible=False)] * 3 + [gr.Textbox(visible=False)],
            samples=[[*t.photos, t.caption] for t in shipped_examples.triplets()], type="index",
            headers=["1", "2", "3", "What to expect"], layout="table",
            label="Examples: click one to run it", elem_id="triplet_examples")

    outputs = [*crops, answer, pair_probabilities, details]
    loaded = samples.click(example_triplet, samples, trio, queue=False, api_visibility="private")
    for trigger, api_name in ((odd_button.click, "odd_one_out"), (loaded.then, None)):
        event = trigger(bind(odd_one_out, ctx), trio, outputs, api_name=api_name,
                        api_visibility="public" if api_name else "private", preprocess=False,
                        show_progress_on=[answer], concurrency_id=parts.MODEL)
        event.success(highlight_odd, details, crops, queue=False, api_visibility="private")
        event.failure(bind(parts.shown_error, ctx), None, answer, queue=False,
                      api_visibility="private")
    for component in trio:
        component.change(cleared_result, None, outputs, queue=False, api_visibility="private")
