"""The web app: a Gradio Blocks page over ExpressionComparer.

Tab 1 compares two photos (uploaded, or captured with one camera as A and B): the verdict, its
probability against the threshold, the crops the model saw with their expressions, the face boxes
and the time taken, and lets the user flag a wrong answer (with consent) for relabelling.
Tab 2 asks which of three faces has the odd expression out. Two classroom tabs: a live mirror
(the webcam scored against a reference face several times a second) and "who copied it best?"
(photos ranked against a reference). Named API endpoints: `/compare`, `/odd_one_out`, `/rank`,
`/flag` and `/download_flags` (token-guarded).

The model is loaded on the CPU. On a GPU machine (a Hugging Face ZeroGPU Space among them) it is
moved to CUDA only inside the functions decorated with spaces.GPU, which is where ZeroGPU allows
CUDA to be initialised; without the `spaces` package the decorator does nothing.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
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
from . import live_html, views
from .faces import parse_box, parse_face_number
from .files import write_atomic
from .flags import ANSWERS, PERSISTENT_STORAGE, PairFlagLogger, default_flag_dir, zip_flags
from .inference import ExpressionComparer
from .live_html import CLOSED_MARK, live_panel
from .live_room import IDLE_SECONDS, LiveRoom

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
MAX_RANKED = 60               # photos ranked at once (30 take about 2 s on 2 CPU cores)
LIVE_EVERY = 0.1              # seconds between the frames the live mode sends
MAX_KEPT_ERRORS = 1000        # errors waiting for their page to show them
FLAGS_TOKEN_VARIABLE = "FECSIM_FLAGS_TOKEN"   # who may download every flag
CAMERA_NOTE = ("Nothing from the camera is kept unless you flag a result: frames are scored in "
               "memory, captured photos live only in this server's temporary cache.")
# The time the user waited, measured in the browser from the click to the result (queue
# included): the server cannot see the queue in front of it.
START_CLOCK = "(...args) => { window.fecsimClick = performance.now(); return args; }"
SHOW_WAITED = """() => { const waited = (performance.now() - window.fecsimClick) / 1000;
  setTimeout(() => { const el = document.querySelector('#waited');
                     if (el && window.fecsimClick) el.textContent = waited.toFixed(2) + ' s'; },
             50); }"""
COUNTDOWN = """async (countdown) => { const show = document.querySelector('#countdown_display');
  for (let i = countdown ? 3 : 0; i > 0; i--) {
    show.textContent = i; await new Promise(r => setTimeout(r, 1000)); }
  show.textContent = ''; return countdown; }"""

# The live score panel stops the camera when the server closed the stream (no face for 2
# minutes), and after the page has been hidden for as long: a forgotten tab holds no place.
LIVE_PAGE_HOOKS = f"""
const stop = () => document.querySelector('#live_camera [title="stop recording"]')
  ?.closest('button')?.click();
const stopHidden = () => {{ stop(); props.value = '<div class="fecsim-live-state" role="status">'
  + '<strong>Stopped:</strong> this page was in the background for {IDLE_SECONDS // 60} minutes. '
  + 'Press Record under the camera to go on.</div>'; }};
let hiddenTimer = null;
document.addEventListener('visibilitychange', () => {{
  clearTimeout(hiddenTimer);
  if (document.hidden) hiddenTimer = setTimeout(stopHidden, {IDLE_SECONDS * 1000});
}});
watch('value', () => {{ if (element.querySelector('[{CLOSED_MARK}]')) stop(); }});
"""

OUTPUTS = Path(tempfile.gettempdir()) / "fecsim-app"   # result images, named by content
RESULT_MAX_AGE = 3600         # seconds a result image (ours, and gradio's cached copy) is kept:
                              # a public app's disk must not fill up with users' photos
_last_sweep = 0.0
_comparer: ExpressionComparer | None = None   # the one model, shared by every session
_live_room: LiveRoom | None = None            # every page's live mirror
_errors: dict[str, str] = {}   # session -> its last error, until the page has shown it


@gpu
def _compare_on_device(a, b, box_a, box_b):
    return _ready().compare(a, b, box_a=box_a, box_b=box_b)


@gpu
def _odd_one_out_on_device(a, b, c, boxes):
    return _ready().odd_one_out(a, b, c, boxes=boxes)


@gpu
def _rank_on_device(reference, photos):
    return _ready().rank(reference, photos)


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
        raise BoxError(source=label, reason=f"face {n} was asked for but {len(found)} face"
                       f"{'s were' if len(found) != 1 else ' was'} found")
    return found[n - 1], found


def draw_boxes(image: Image.Image, box, found) -> Image.Image:
    """The photo with every detected face numbered (1 = largest) and the one used in green."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 200))
    font_size = max(14, round(max(image.size) / 20))   # readable whatever the photo's size
    for i, other in enumerate(found or [], start=1):
        draw.rectangle(other, outline=(255, 170, 0), width=max(1, width // 2))
        draw.text((other[0] + width, other[1] + width), str(i), fill=(255, 170, 0),
                  font_size=font_size, stroke_width=max(1, font_size // 12), stroke_fill=(0, 0, 0))
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
        write_atomic(path, data)
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
    """Which of the page's images the error is about, by its label: no server paths."""
    label = next((label for label, path in paths.items() if path and exc.source == path), None)
    return _page_error(f"{label}: {exc.reason}" if label else str(exc))


def _page_error(message: str) -> gr.Error:
    return gr.Error(message, title="Cannot compare")


def _errors_kept_for_the_page(fn):
    """An error still reaches the caller as gr.Error (an API client gets AppError), and is kept
    for the session so that the page shows it in its result area too: the toast vanishes."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            request = next((a for a in (*args, *kwargs.values())
                            if isinstance(a, gr.Request)), None)
            if request is not None and request.session_hash:
                _errors[request.session_hash] = exc.message
                while len(_errors) > MAX_KEPT_ERRORS:   # API clients never collect theirs
                    _errors.pop(next(iter(_errors)))
            raise
    return wrapper


def _shown_error(request: gr.Request):
    """The last error of this session, as the result area shows it."""
    return views.error(_errors.pop(request.session_hash, "Something went wrong; try again."))


def _require(paths: dict):
    missing = [label for label, path in paths.items() if not path]
    if missing:
        raise _page_error(f"{' and '.join(missing)}: no photo given (upload one, or capture one "
                          "with the camera)")


def _distribution(expressions):
    """A face's expression distribution for gr.Label (None for a model without a classifier)."""
    return None if expressions is None else dict(expressions)


@_errors_kept_for_the_page
def compare(image_a, image_b, box_a=None, box_b=None, face_a=None, face_b=None,
            request: gr.Request = None):
    """Compare two photos: do they show the same facial expression?

    Only the two photos are needed. box_a/box_b: optional "x0, y0, x1, y1" in pixels; face_a/
    face_b: which detected face to use (1 = the largest, the default). Returns the photos with
    their face boxes, the two crops the model saw, each face's expression distribution, the
    details (probability, verdict, threshold, boxes, faces found, expressions, seconds) and the
    state used for flagging.
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
    details = dict(result.to_dict(), model_seconds=round(result.seconds, 3),
                   faces_found_a=[list(b) for b in (found_a if found_a is not None else fa.found)],
                   faces_found_b=[list(b) for b in (found_b if found_b is not None else fb.found)],
                   checkpoint=_comparer.path.name, checkpoint_sha256=_comparer.sha256)
    boxed = [saved(draw_boxes(f.image, f.box, details[f"faces_found_{k}"]), "jpeg")
             for f, k in ((fa, "a"), (fb, "b"))]
    crops = [saved(fa.crop), saved(fb.crop)]
    details["seconds"] = round(time.perf_counter() - start, 3)   # on the server: the model,
    last = {"original_a": image_a, "original_b": image_b, "crop_a": fa.crop,   # detection, files
            "crop_b": fb.crop, "result": details, "flagged": False}
    return (*boxed, *crops, _distribution(result.expressions[0]),
            _distribution(result.expressions[1]), details, last)


@_errors_kept_for_the_page
def odd_one_out(image_1, image_2, image_3, request: gr.Request = None):
    """Which of three photos shows the odd expression out? Returns the three crops the model
    saw (the odd one highlighted), the answer, P(same expression) of each pair, and details."""
    start = time.perf_counter()
    image_1, image_2, image_3 = _path(image_1), _path(image_2), _path(image_3)
    paths = {"Image 1": image_1, "Image 2": image_2, "Image 3": image_3}
    _require(paths)
    try:
        result = _odd_one_out_on_device(image_1, image_2, image_3, (None, None, None))
    except FecsimError as exc:
        raise _user_error(exc, paths) from None
    pairs = {f"Images {k[0]} and {k[1]}": round(v, 4) for k, v in result.probabilities.items()}
    details = dict(result.to_dict(), seconds=round(time.perf_counter() - start, 3))
    answer = f"Image {result.odd} is the odd one out"
    return (*(saved(f.crop) for f in result.faces), answer, pairs, details)


def highlight_odd(details):
    """The odd face's crop outlined and labelled (on the page only: the API returns plain files)."""
    return [gr.Image(elem_classes=["fecsim-crop"] + (["fecsim-odd"] if i == details["odd"] else []),
                     label=f"Face {i}" + (": the odd one out" if i == details["odd"] else ""))
            for i in (1, 2, 3)]


@_errors_kept_for_the_page
def rank(reference, photos, request: gr.Request = None):
    """Who copied the reference's expression best? Ranks the photos by P(same expression as the
    reference), best first. Returns a gallery of their crops with captions, and the ranking as a
    list of {rank, name, probability, error}; a photo without a face is listed last with why."""
    reference = _path(reference)
    paths = [_path(p) for p in photos or []]
    _require({"The reference": reference})
    if not paths:
        raise _page_error("No photos to rank: upload some, or capture them with the camera")
    if len(paths) > MAX_RANKED:
        raise _page_error(f"At most {MAX_RANKED} photos can be ranked at once (got {len(paths)})")
    try:
        ranked = _rank_on_device(reference, paths)
    except FecsimError as exc:
        raise _user_error(exc, {"The reference": reference}) from None
    names = {p: Path(p).name for p in paths}
    table, gallery = [], []
    for i, r in enumerate(ranked, start=1):
        name = names[r.source]
        table.append({"rank": i if r.probability is not None else None, "name": name,
                      "probability": None if r.probability is None else round(r.probability, 4),
                      "error": r.error})
        if r.face is not None:
            gallery.append((saved(r.face.crop), f"{i}. {name}: {r.probability:.0%}"))
    return gallery, table


def live_frame(frame, request: gr.Request):
    """One webcam frame of the live mirror mode: the score panel (the frame scored, P(same
    expression as the reference), the recent scores, the best one) and the frame itself (to
    take as a reference)."""
    if frame is None:
        return gr.skip(), frame
    reading = _live_room.score(request.session_hash, frame)
    if reading is None:   # this page's previous frame is still in work
        return gr.skip(), frame
    return live_panel(reading, _comparer.threshold), frame


def next_student(request: gr.Request):
    """Same reference, a new person: the best score, the line and the count start again."""
    _live_room.next_student(request.session_hash)
    return ('<div class="fecsim-live-state" role="status">Next student: the best score and the '
            'line start again.</div>')


@_errors_kept_for_the_page
def set_reference(image, request: gr.Request = None):
    """Embed the reference face once for the live mode; returns its crop."""
    path = _path(image)
    if not path:
        _live_room.set_reference(request.session_hash, None)
        return None
    try:
        face = _comparer.face(path)
    except FecsimError as exc:
        raise _user_error(exc, {"The reference": path}) from None
    _live_room.set_reference(request.session_hash, _comparer.features([face]))
    return saved(face.crop)


def captured(frame):
    """The camera's latest frame as a photo file (for Capture as A / B)."""
    if frame is None:
        raise gr.Error("Start the camera first (the record button under the preview).",
                       title="No camera frame")
    return saved(Image.fromarray(frame), "jpeg")


def add_capture(frame, photos):
    """The camera's latest frame added to the photos to rank."""
    if frame is None:
        captured(frame)   # says why
    photos = [_path(p) for p in photos or []]
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="capture-", dir=OUTPUTS)) / f"capture-{len(photos) + 1}.jpg"
    Image.fromarray(frame).save(path, quality=92)
    return [*photos, str(path)]


def download_flags(token: str, flag_dir):
    """All flags as one zip (the folders `python -m fecsim export-flags` reads). Needs the token
    set in the FECSIM_FLAGS_TOKEN environment variable; refused when it is unset or wrong."""
    expected = os.environ.get(FLAGS_TOKEN_VARIABLE, "")
    if not expected:
        raise gr.Error(f"Downloading flags is switched off: {FLAGS_TOKEN_VARIABLE} is not set on "
                       "the server.", title="Refused")
    if not hmac.compare_digest(str(token or "").encode(), expected.encode()):
        raise gr.Error("Wrong token.", title="Refused")
    out = Path(tempfile.mkdtemp(prefix="fecsim-flags-")) / "flagged.zip"
    zip_flags(flag_dir, out)
    return str(out)


def build_demo(checkpoint_path=None, flag_dir=None, comparer=None,
               concurrency: int = CONCURRENCY) -> gr.Blocks:
    """The whole page. checkpoint_path None means the shipped model; flag_dir None means
    /data/flagged on persistent storage, else flagged/."""
    global _comparer, _live_room
    # Loaded on the CPU: CUDA is only touched inside the spaces.GPU functions.
    _comparer = comparer or ExpressionComparer.load(checkpoint_path or checkpoint.SHIPPED,
                                                    device="cpu")
    _live_room = LiveRoom(_comparer)
    flag_dir = Path(flag_dir) if flag_dir is not None else default_flag_dir()
    logger = PairFlagLogger(flag_dir)

    with gr.Blocks(title="fecsim: same facial expression?",
                   delete_cache=(RESULT_MAX_AGE // 6, RESULT_MAX_AGE)) as demo:
        gr.Markdown("# Do these two faces show the same facial expression?\n"
                    "Upload two photos or capture them with the camera, then press **Compare**. "
                    "The model sees only the face crops shown with the result. " + CAMERA_NOTE)
        with gr.Tab("Compare two faces"):
            with gr.Row():
                image_a = _photo_input("Image A", "image_a")
                image_b = _photo_input("Image B", "image_b")
                with gr.Column(min_width=240):
                    camera = _camera("camera")
                    with gr.Row():
                        capture_a = gr.Button("Capture as A", elem_id="capture_a")
                        capture_b = gr.Button("Capture as B", elem_id="capture_b")
                    countdown = gr.Checkbox(False, label="3-second countdown",
                                            elem_id="countdown")
                    gr.HTML('<div id="countdown_display" class="fecsim-live"></div>')
            latest_frame = gr.State(None)
            with gr.Accordion("Choose the face (optional)", open=False):
                gr.Markdown("The largest face is used. Type a box in pixels, or pick another "
                            "detected face by its number on the result (1 = largest).")
                with gr.Row():
                    box_a = gr.Textbox(label="Box in A (x0, y0, x1, y1)", elem_id="box_a")
                    box_b = gr.Textbox(label="Box in B (x0, y0, x1, y1)", elem_id="box_b")
                with gr.Row():
                    face_a = gr.Number(1, label="Face in A", precision=0, minimum=1)
                    face_b = gr.Number(1, label="Face in B", precision=0, minimum=1)
            gr.Examples(_example_files("pairs"), [image_a, image_b], label="Example pairs",
                        cache_examples=False, examples_per_page=8)
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
            # The verdict, and beside it both crops side by side with their expressions; on a
            # phone the crops wrap under the verdict, still side by side.
            with gr.Row(equal_height=False, elem_id="result"):
                with gr.Column(min_width=300):
                    verdict = gr.HTML(elem_id="verdict", min_height=0)
                with gr.Column(min_width=320):
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=150):
                            crop_a = _result_image("Crop A (model's view)", "crop_a", 180)
                            expressions_a = _expressions("Expression in A", "expressions_a")
                        with gr.Column(min_width=150):
                            crop_b = _result_image("Crop B (model's view)", "crop_b", 180)
                            expressions_b = _expressions("Expression in B", "expressions_b")
            with gr.Row():
                boxed_a = _result_image("Faces found in A (1 = largest)", "boxed_a")
                boxed_b = _result_image("Faces found in B (1 = largest)", "boxed_b")
            with gr.Accordion("Details", open=False):
                details = gr.JSON(label="Details")
            last = gr.State(None)
            with gr.Group(visible=False) as flag_panel:
                gr.Markdown(f"**Wrong answer?** {_storage_note(flag_dir)}")
                with gr.Row():
                    right_answer = gr.Radio([SAME, DIFFERENT], label="The right answer",
                                            elem_id="right_answer")
                    consent = gr.Checkbox(False, elem_id="consent", label=(
                        "I agree that both photos, both crops and my answer are stored"))
                    flag_button = gr.Button("Flag this result as wrong", elem_id="flag")
                flag_status = gr.Markdown(elem_id="flag_status")

        with gr.Tab("Odd one out"):
            gr.Markdown("## Which face's expression is the odd one out?\nThree photos; the "
                        "model says which expression differs from the other two (the task of "
                        "Google's FEC dataset).")
            with gr.Row():
                trio = [_photo_input(f"Image {i}", f"image_{i}") for i in (1, 2, 3)]
            odd_button = gr.Button("Find the odd one out", variant="primary", elem_id="odd")
            odd_answer = gr.HTML(elem_id="odd_answer")
            with gr.Row():
                trio_crops = [_result_image(f"Face {i}", f"crop_{i}", 200) for i in (1, 2, 3)]
            pair_probabilities = gr.Label(label="P(same expression) of each pair",
                                          elem_id="pair_probabilities", show_heading=False)
            with gr.Accordion("Details", open=False):
                odd_details = gr.JSON(label="Details")
            gr.Examples(_example_files("triplets"), trio, label="Example triplets",
                        cache_examples=False)

        with gr.Tab("Classroom: live mirror"):
            gr.Markdown("## Copy the face!\nChoose a reference face, start the camera, and "
                        "watch P(same expression) move as you copy it. " + CAMERA_NOTE)
            with gr.Row():
                with gr.Column():
                    reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                         type="filepath", elem_id="reference", height=240)
                    use_frame = gr.Button("Use the camera's face as the reference",
                                          elem_id="use_frame")
                    reference_crop = _result_image("Reference crop", "reference_crop", 160)
                with gr.Column():
                    live_camera = _camera("live_camera")
                    next_button = gr.Button("Next student", elem_id="next_student")
                    live_score = gr.HTML(elem_id="live_score", js_on_load=LIVE_PAGE_HOOKS)
            live_latest = gr.State(None)
            gr.Examples(_distinct_photos(_example_files("pairs")), [reference],
                        label="Example reference faces", cache_examples=False)

        with gr.Tab("Classroom: who copied it best?"):
            gr.Markdown("## Who copied it best?\nOne reference face and a set of photos, "
                        "uploaded together or captured one after another: they are ranked by "
                        "P(same expression as the reference). " + CAMERA_NOTE)
            with gr.Row():
                rank_reference = gr.Image(label="Reference face", sources=["upload", "clipboard"],
                                          type="filepath", elem_id="rank_reference", height=240)
                rank_photos = gr.File(label="Photos to rank", file_count="multiple",
                                      file_types=["image"], elem_id="rank_photos")
                with gr.Column():
                    rank_camera = _camera("rank_camera")
                    add_button = gr.Button("Capture into the set", elem_id="add_capture")
            rank_latest = gr.State(None)
            rank_button = gr.Button("Rank", variant="primary", elem_id="rank")
            rank_message = gr.HTML(elem_id="rank_message")
            ranking_gallery = gr.Gallery(label="Ranking (best first)", columns=5, height="auto",
                                         elem_id="ranking_gallery", object_fit="contain")
            with gr.Accordion("Ranking as a table", open=False):
                ranking = gr.JSON(label="Ranking")

        with gr.Accordion("For the person running this app: download the flags", open=False):
            gr.Markdown(f"All flags as one zip (what `python -m fecsim export-flags` reads). "
                        f"Needs the token set in `{FLAGS_TOKEN_VARIABLE}` on the server.")
            with gr.Row():
                token = gr.Textbox(label="Token", type="password", elem_id="token")
                download_button = gr.Button("Download all flags", elem_id="download_flags")
            flags_zip = gr.File(label="Flags", elem_id="flags_zip")

        gr.Markdown(f"Model: `{_comparer.path.name}` (sha256 `{_comparer.sha256[:12]}`). "
                    "Probabilities are calibrated on held-out pairs; a verdict is the "
                    "probability against the checkpoint's threshold.")


        def flag(state, answer, agreed):
            """Store the last result as wrong, with the user's answer, for relabelling. Stores
            nothing unless agreed is True: both photos, both crops and the answers are kept."""
            if not state:
                raise gr.Error("Compare two photos first; then flag the result.")
            if state["flagged"]:
                raise gr.Error("This result is already flagged.")
            if answer not in ANSWERS:
                raise gr.Error(f"Choose the right answer first ({SAME} or {DIFFERENT}).")
            if agreed is not True:
                raise gr.Error("Nothing was stored: tick the box to agree to storing the photos.")
            count = logger.flag([state["original_a"], state["original_b"], state["crop_a"],
                                 state["crop_b"], state["result"]], flag_option=answer)
            state = dict(state, flagged=True)
            return f"Flagged: the right answer is **{answer}**. Thank you ({count} stored).", state

        result_fields = [boxed_a, boxed_b, crop_a, crop_b, expressions_a, expressions_b, details]
        compare_inputs = [image_a, image_b, box_a, box_b, face_a, face_b]

        def run_compare(trigger, api_name=None):
            """Compare, then show the verdict (or the error, which stays) in the result area."""
            # Progress (and gradio's own error badge) on the result area alone, not on each field.
            event = trigger(compare, compare_inputs, [*result_fields, last], api_name=api_name,
                            api_visibility="public" if api_name else "private",
                            preprocess=False, js=START_CLOCK, show_progress_on=[verdict])
            event.success(lambda d: (views.verdict(d), gr.Group(visible=True), "", None, False),
                          details, [verdict, flag_panel, flag_status, right_answer, consent],
                          queue=False, api_visibility="private"
                          ).then(None, js=SHOW_WAITED)
            event.failure(_shown_error, None, verdict, queue=False, api_visibility="private")

        run_compare(compare_button.click, api_name="compare")
        # A changed input clears the old result and the flag panel: a flag can only ever store
        # the pair that is on the screen.
        cleared = [*result_fields, verdict, last, flag_panel, flag_status, consent]
        for component in compare_inputs:
            component.change(lambda: (*[None] * len(result_fields), "", None,
                                      gr.Group(visible=False), "", False), None, cleared,
                             queue=False, api_visibility="private")
        flag_button.click(flag, [last, right_answer, consent], [flag_status, last],
                          api_name="flag")

        # One camera for both photos: the stream keeps its latest frame; Capture as A / B take
        # it (after the countdown, when ticked), and B's capture starts the comparison itself.
        camera.stream(lambda f: f, camera, latest_frame, stream_every=0.2, show_progress="hidden",
                      concurrency_limit=None, api_visibility="private")
        for button, image in ((capture_a, image_a), (capture_b, image_b)):
            taken = button.click(None, countdown, None, js=COUNTDOWN).then(
                captured, latest_frame, image, api_visibility="private", concurrency_limit=None)
        run_compare(taken.success)   # B captured: compare at once

        odd_event = odd_button.click(odd_one_out, trio,
                                     [*trio_crops, odd_answer, pair_probabilities, odd_details],
                                     api_name="odd_one_out", preprocess=False,
                                     show_progress_on=[odd_answer])
        odd_event.success(highlight_odd, odd_details, trio_crops, queue=False,
                          api_visibility="private")
        odd_event.failure(_shown_error, None, odd_answer, queue=False, api_visibility="private")
        for component in trio:
            component.change(lambda: (None, None, None, "", None, None), None,
                             [*trio_crops, odd_answer, pair_probabilities, odd_details],
                             queue=False, api_visibility="private")

        # Live mirror: the reference is embedded once; each frame is scored against it.
        reference.change(set_reference, reference, reference_crop, preprocess=False,
                         api_visibility="private"
                         ).failure(_shown_error, None, live_score, queue=False,
                                   api_visibility="private")
        next_button.click(next_student, None, live_score, queue=False, api_visibility="private")
        use_frame.click(captured, live_latest, reference, api_visibility="private",
                        concurrency_limit=None)
        # Pages stream side by side: the live room shares the model out (one frame in work per
        # page, a line beyond its capacity), so gradio holds none of them back.
        live_camera.stream(live_frame, live_camera, [live_score, live_latest],
                           stream_every=LIVE_EVERY, concurrency_id="live", show_progress="hidden",
                           concurrency_limit=None, api_visibility="private")

        rank_camera.stream(lambda f: f, rank_camera, rank_latest, stream_every=0.2,
                           show_progress="hidden", concurrency_limit=None,
                           api_visibility="private")
        add_button.click(add_capture, [rank_latest, rank_photos], rank_photos,
                         api_visibility="private", concurrency_limit=None)
        rank_event = rank_button.click(rank, [rank_reference, rank_photos],
                                       [ranking_gallery, ranking], api_name="rank",
                                       preprocess=False, show_progress_on=[ranking_gallery])
        rank_event.success(lambda: "", None, rank_message, queue=False, api_visibility="private")
        rank_event.failure(_shown_error, None, rank_message, queue=False,
                           api_visibility="private")
        def download(token):
            """All flags as one zip; needs the server's FECSIM_FLAGS_TOKEN."""
            return download_flags(token, flag_dir)   # this demo's own folder

        download_button.click(download, token, flags_zip, api_name="download_flags")

    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks, host="127.0.0.1", port=7860, share=False, **kwargs):
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS,
                       max_file_size=MAX_FILE_SIZE, ssr_mode=False, **kwargs)


CSS = views.CSS + live_html.CSS + """
#odd_answer * { font-size: 2rem !important; font-weight: 800; }
.fecsim-crop img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
/* Two expression lists side by side on a phone: small enough that the percentages stay in view. */
@media (max-width: 480px) {
  #expressions_a h2.output-class, #expressions_b h2.output-class { font-size: 1.25rem; }
  #expressions_a dl.label, #expressions_b dl.label { font-size: 0.75rem; }
}
"""


def _photo_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, sources=["upload", "clipboard"], type="filepath",
                    elem_id=elem_id, height=280)


def _camera(elem_id: str) -> gr.Image:
    """A streaming webcam preview (mirrored, as people expect to see themselves)."""
    return gr.Image(label="Camera", sources=["webcam"], streaming=True, type="numpy",
                    elem_id=elem_id, webcam_options=gr.WebcamOptions(mirror=True), height=240)


def _expressions(label: str, elem_id: str) -> gr.Label:
    """A face's top 3 expressions, from the model's classifier."""
    return gr.Label(label=label, num_top_classes=3, elem_id=elem_id)


def _storage_note(flag_dir: Path) -> str:
    where = (f"in `{flag_dir}` on this server's persistent storage"
             if flag_dir.resolve().is_relative_to(PERSISTENT_STORAGE) else
             "on this server's disk, and kept only until the server restarts")
    return ("Flagging is optional and stores nothing until you tick the box. If you flag, both "
            "photos (as uploaded or captured), both face crops shown above, the model's answer "
            f"and yours are stored {where}, to relabel and retrain the model.")


def _path(value):
    """The uploaded file's path. The photo events skip gradio's preprocessing (preprocess=False),
    which would open every upload with PIL first and fail with a generic message on a non-image
    or an oversized photo; fecsim decodes it instead, safely, and says which image and why."""
    if isinstance(value, dict):
        return value.get("path")
    return value


def _result_image(label: str, elem_id: str, height: int = 240) -> gr.Image:
    # Filled with files from saved(): crops as exact PNG, photos with boxes as JPEG (a photo
    # encodes ~100x faster as JPEG than as PNG).
    return gr.Image(label=label, interactive=False, elem_id=elem_id, height=height,
                    buttons=[], elem_classes=["fecsim-crop"])


def _distinct_photos(examples: list[list[str]]) -> list[list[str]]:
    """Each distinct photo of the examples once (several examples share a photo)."""
    by_content = {}
    for path in (p for example in examples for p in example):
        by_content.setdefault(hashlib.sha256(Path(path).read_bytes()).digest(), path)
    return [[p] for p in by_content.values()]


def _example_files(kind: str) -> list[list[str]]:
    """examples/<kind>/<name>/*.jpg, each folder one example, files in name order."""
    root = EXAMPLES / kind
    if not root.is_dir():
        return []
    return [[str(p) for p in sorted(folder.glob("*.jpg"))]
            for folder in sorted(root.iterdir()) if folder.is_dir()]
