"""The web app: a Gradio Blocks page over ExpressionComparer.

Tab 1 compares two photos (upload or webcam): face boxes, the crops the model saw, the verdict,
its probability and the time taken, and lets the user flag a wrong answer for relabelling.
Tab 2 asks which of three faces has the odd expression out. Both are named API endpoints
(`/compare`, `/odd_one_out`), and flagging is `/flag`.

The model is loaded on the CPU. On a GPU machine (a Hugging Face ZeroGPU Space among them) it is
moved to CUDA only inside the functions decorated with spaces.GPU, which is where ZeroGPU allows
CUDA to be initialised; without the `spaces` package the decorator does nothing.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import torch
from PIL import Image, ImageDraw

from . import checkpoint
from .errors import BoxError, FecsimError
from .faces import parse_box, parse_face_number
from .flags import ANSWERS, PairFlagLogger
from .inference import ExpressionComparer

try:  # Hugging Face Spaces: runs the decorated function with a GPU attached.
    import spaces
    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAME, DIFFERENT = list(ANSWERS)
MAX_FILE_SIZE = "25mb"        # uploads beyond this are refused by gradio before they reach us
CONCURRENCY = 1               # one model call at a time: a GPU or 2 CPU cores gain nothing more
QUEUE_SIZE = 256              # waiting requests beyond this are told the queue is full
STORAGE_NOTE = ("Flagging is optional. If you flag, both photos, the face crops and your answer "
                "are stored on this server to relabel and retrain the model.")

OUTPUTS = Path(tempfile.gettempdir()) / "fecsim-app"   # result images, named by content
RESULT_MAX_AGE = 3600         # seconds a result image (ours, and gradio's cached copy) is kept:
                              # a public app's disk must not fill up with users' photos
_last_sweep = 0.0
_comparer: ExpressionComparer | None = None   # the one model, shared by every session


@gpu
def _compare_on_device(a, b, box_a, box_b):
    return _ready().compare(a, b, box_a=box_a, box_b=box_b)


@gpu
def _odd_one_out_on_device(a, b, c, boxes):
    return _ready().odd_one_out(a, b, c, boxes=boxes)


def _ready() -> ExpressionComparer:
    # Only here may CUDA be touched: inside the spaces.GPU-decorated call.
    if torch.cuda.is_available() and _comparer.device.type != "cuda":
        _comparer.to("cuda")
    return _comparer


def choose_box(path: str, box_text, face_number, label: str):
    """The box to use for one photo: the typed box, else the chosen detected face, else None
    (the largest face). Returns (box, every detected box or None when detection was skipped)."""
    box = parse_box(box_text, label)
    if box is not None:
        return box, None
    n = parse_face_number(face_number, label)
    if n == 1:
        return None, None
    found = _comparer.face(path).found
    if n > len(found):
        raise BoxError(f"{label}: face {n} was asked for but {len(found)} face"
                       f"{'s were' if len(found) != 1 else ' was'} found")
    return found[n - 1], found


def draw_boxes(image: Image.Image, box, found) -> Image.Image:
    """The photo with every detected face numbered (1 = largest) and the one used in green."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 200))
    for i, other in enumerate(found or [], start=1):
        draw.rectangle(other, outline=(255, 170, 0), width=max(1, width // 2))
        draw.text((other[0] + width, other[1] + width), str(i), fill=(255, 170, 0))
    draw.rectangle(box, outline=(0, 220, 0), width=width)
    return image


def saved(image: Image.Image, format: str = "png") -> str:
    """The image as a file named by its content, written atomically (temporary name + rename).

    Handing gradio a PIL image makes it write <cache>/<hash>/image.png in place, truncating the
    file while another client may be downloading the identical result (the same example clicked
    by a whole classroom): that client gets a cut-off body. A finished file is copied atomically.
    """
    data = io.BytesIO()
    image.save(data, format=format)
    data = data.getvalue()
    path = OUTPUTS / f"{hashlib.sha256(data).hexdigest()[:32]}.{format}"
    if path.exists():
        os.utime(path)   # in use again: not to be swept as old
    else:
        OUTPUTS.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    _remove_old_results()
    return str(path)


def _remove_old_results():
    """Delete result images older than RESULT_MAX_AGE; looks at most every RESULT_MAX_AGE / 6."""
    global _last_sweep
    now = time.time()
    if now - _last_sweep < RESULT_MAX_AGE / 6:
        return
    _last_sweep = now
    for old in OUTPUTS.iterdir():
        try:
            if now - old.stat().st_mtime > RESULT_MAX_AGE:
                old.unlink()
        except OSError:
            pass   # removed meanwhile by another request


def _user_error(exc: FecsimError, paths: dict) -> gr.Error:
    """fecsim names the file; say which of the page's images that was, without server paths."""
    message = str(exc)
    for label, path in paths.items():
        if path and message.startswith(path):
            return gr.Error(f"{label}: {message[len(path):].lstrip(': ')}", title="Cannot compare")
    return gr.Error(message, title="Cannot compare")


def _require(paths: dict):
    missing = [label for label, path in paths.items() if not path]
    if missing:
        raise gr.Error(f"{' and '.join(missing)}: no photo given (upload one or use the webcam)",
                       title="Cannot compare")


def compare(image_a, image_b, box_a="", box_b="", face_a=1, face_b=1):
    """Compare two photos: do they show the same facial expression?

    Returns the photos with face boxes, the two crops the model saw, the verdict, P(same
    expression), seconds taken, the details as a dict, and the state used for flagging.
    """
    start = time.perf_counter()
    image_a, image_b = _path(image_a), _path(image_b)
    paths = {"Image A": image_a, "Image B": image_b}
    _require(paths)
    try:
        chosen_a, found_a = choose_box(image_a, box_a, face_a, "Image A")
        chosen_b, found_b = choose_box(image_b, box_b, face_b, "Image B")
        result = _compare_on_device(image_a, image_b, chosen_a, chosen_b)
    except FecsimError as exc:
        raise _user_error(exc, paths) from None
    fa, fb = result.faces
    seconds = time.perf_counter() - start
    details = dict(result.to_dict(), seconds=round(seconds, 3),
                   model_seconds=round(result.seconds, 3),
                   faces_found_a=[list(b) for b in (found_a if found_a is not None else fa.found)],
                   faces_found_b=[list(b) for b in (found_b if found_b is not None else fb.found)],
                   checkpoint=_comparer.path.name, checkpoint_sha256=_comparer.sha256)
    last = {"original_a": image_a, "original_b": image_b, "crop_a": fa.crop, "crop_b": fb.crop,
            "result": details, "flagged": False}
    return (saved(draw_boxes(fa.image, fa.box, details["faces_found_a"]), "jpeg"),
            saved(draw_boxes(fb.image, fb.box, details["faces_found_b"]), "jpeg"),
            saved(fa.crop), saved(fb.crop), result.verdict, round(result.probability, 4),
            round(seconds, 3), details, last)


def odd_one_out(image_1, image_2, image_3):
    """Which of three photos shows the odd expression out? Returns the three crops the model
    saw, the odd one's number (1, 2 or 3), a sentence, and the pair probabilities."""
    start = time.perf_counter()
    image_1, image_2, image_3 = _path(image_1), _path(image_2), _path(image_3)
    paths = {"Image 1": image_1, "Image 2": image_2, "Image 3": image_3}
    _require(paths)
    try:
        result = _odd_one_out_on_device(image_1, image_2, image_3, (None, None, None))
    except FecsimError as exc:
        raise _user_error(exc, paths) from None
    probabilities = {f"{k[0]}-{k[1]}": round(v, 4) for k, v in result.probabilities.items()}
    details = dict(result.to_dict(), pair_probabilities=probabilities,
                   seconds=round(time.perf_counter() - start, 3))
    sentence = f"Image {result.odd} is the odd one out"
    return (*(saved(f.crop) for f in result.faces), result.odd, sentence, probabilities, details)


def build_demo(checkpoint_path=None, flag_dir="flagged", comparer=None,
               concurrency: int = CONCURRENCY) -> gr.Blocks:
    """The whole page. checkpoint_path None means the shipped model."""
    global _comparer
    # Loaded on the CPU: CUDA is only touched inside the spaces.GPU functions.
    _comparer = comparer or ExpressionComparer.load(checkpoint_path or checkpoint.SHIPPED,
                                                    device="cpu")
    logger = PairFlagLogger()

    with gr.Blocks(title="fecsim: same facial expression?",
                   delete_cache=(RESULT_MAX_AGE // 6, RESULT_MAX_AGE)) as demo:
        gr.Markdown("# Do these two faces show the same facial expression?\n"
                    "Upload two photos or take them with the webcam, then press **Compare**. "
                    "The model sees only the face crops shown below the result.")
        with gr.Tab("Compare two faces"):
            with gr.Row():
                image_a = _photo_input("Image A", "image_a")
                image_b = _photo_input("Image B", "image_b")
            with gr.Accordion("Choose the face (optional)", open=False):
                gr.Markdown("The largest face is used. Type a box in pixels, or pick another "
                            "detected face by its number on the result (1 = largest).")
                with gr.Row():
                    box_a = gr.Textbox(label="Box in A (x0, y0, x1, y1)", elem_id="box_a")
                    box_b = gr.Textbox(label="Box in B (x0, y0, x1, y1)", elem_id="box_b")
                with gr.Row():
                    face_a = gr.Number(1, label="Face in A", precision=0, minimum=1)
                    face_b = gr.Number(1, label="Face in B", precision=0, minimum=1)
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
            with gr.Row():
                verdict = gr.Textbox(label="Verdict", elem_id="verdict", interactive=False)
                probability = gr.Number(None, label="P(same expression)", elem_id="probability",
                                        interactive=False)
                seconds = gr.Number(None, label="Seconds", elem_id="seconds", interactive=False)
            with gr.Row():
                boxed_a = _result_image("Face found in A", "boxed_a")
                boxed_b = _result_image("Face found in B", "boxed_b")
                crop_a = _result_image("Crop A (what the model saw)", "crop_a")
                crop_b = _result_image("Crop B (what the model saw)", "crop_b")
            with gr.Accordion("Details", open=False):
                details = gr.JSON(label="Details")
            last = gr.State(None)
            with gr.Group(visible=False) as flag_panel:
                gr.Markdown(f"**Wrong answer?** {STORAGE_NOTE}")
                with gr.Row():
                    right_answer = gr.Radio([SAME, DIFFERENT], label="The right answer",
                                            elem_id="right_answer")
                    flag_button = gr.Button("Flag this result as wrong", elem_id="flag")
                flag_status = gr.Markdown(elem_id="flag_status")
            gr.Examples(_example_files("pairs"), [image_a, image_b], label="Example pairs",
                        cache_examples=False)

        with gr.Tab("Odd one out"):
            gr.Markdown("Three photos: which face's expression is the odd one out? "
                        "(The task of Google's FEC dataset.)")
            with gr.Row():
                trio = [_photo_input(f"Image {i}", f"image_{i}") for i in (1, 2, 3)]
            odd_button = gr.Button("Find the odd one out", variant="primary", elem_id="odd")
            with gr.Row():
                odd_number = gr.Number(None, label="Odd one out (1, 2 or 3)", precision=0,
                                       elem_id="odd_number", interactive=False)
                odd_sentence = gr.Textbox(label="Answer", elem_id="odd_sentence",
                                          interactive=False)
                pair_probabilities = gr.JSON(label="P(same expression) of each pair")
            with gr.Row():
                trio_crops = [_result_image(f"Crop {i} (what the model saw)", f"crop_{i}")
                              for i in (1, 2, 3)]
            with gr.Accordion("Details", open=False):
                odd_details = gr.JSON(label="Details")
            gr.Examples(_example_files("triplets"), trio, label="Example triplet",
                        cache_examples=False)

        gr.Markdown(f"Model: `{_comparer.path.name}` (sha256 `{_comparer.sha256[:12]}`). "
                    "Probabilities are calibrated on held-out pairs; a verdict is the "
                    "probability against the checkpoint's threshold.")

        logger.setup([image_a, image_b, crop_a, crop_b, details], flag_dir)

        def flag(state, answer):
            """Store the last result as wrong, with the user's answer, for relabelling."""
            if not state:
                raise gr.Error("Compare two photos first; then flag the result.")
            if state["flagged"]:
                raise gr.Error("This result is already flagged.")
            if answer not in ANSWERS:
                raise gr.Error(f"Choose the right answer first ({SAME} or {DIFFERENT}).")
            count = logger.flag([state["original_a"], state["original_b"], state["crop_a"],
                                 state["crop_b"], state["result"]], flag_option=answer)
            state = dict(state, flagged=True)
            return f"Flagged: the right answer is **{answer}**. Thank you ({count} stored).", state

        compare_event = compare_button.click(
            compare, [image_a, image_b, box_a, box_b, face_a, face_b],
            [boxed_a, boxed_b, crop_a, crop_b, verdict, probability, seconds, details, last],
            api_name="compare", preprocess=False)
        compare_event.success(lambda: (gr.Group(visible=True), "", None), None,
                              [flag_panel, flag_status, right_answer], api_visibility="private")
        flag_button.click(flag, [last, right_answer], [flag_status, last], api_name="flag")
        odd_button.click(odd_one_out, trio,
                         [*trio_crops, odd_number, odd_sentence, pair_probabilities, odd_details],
                         api_name="odd_one_out", preprocess=False)

    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks, host="127.0.0.1", port=7860, share=False, **kwargs):
    return demo.launch(server_name=host, server_port=port, share=share,
                       max_file_size=MAX_FILE_SIZE, ssr_mode=False, **kwargs)


def _photo_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, sources=["upload", "webcam"], type="filepath", elem_id=elem_id,
                    webcam_options=gr.WebcamOptions(mirror=True), height=320)


def _path(value):
    """The uploaded file's path. The photo events skip gradio's preprocessing (preprocess=False),
    which would open every upload with PIL first and fail with a generic message on a non-image
    or an oversized photo; fecsim decodes it instead, safely, and says which image and why."""
    if isinstance(value, dict):
        return value.get("path")
    return value


def _result_image(label: str, elem_id: str) -> gr.Image:
    # Filled with files from saved(): crops as exact PNG, photos with boxes as JPEG (a photo
    # encodes ~100x faster as JPEG than as PNG).
    return gr.Image(label=label, interactive=False, elem_id=elem_id, height=240)


def _example_files(kind: str) -> list[list[str]]:
    """examples/<kind>/<name>/*.jpg, each folder one example, files in name order."""
    root = EXAMPLES / kind
    if not root.is_dir():
        return []
    return [[str(p) for p in sorted(folder.glob("*.jpg"))]
            for folder in sorted(root.iterdir()) if folder.is_dir()]
