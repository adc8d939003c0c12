"""The web app's handlers called directly, as the page's events call them (no server): fast tier.
The end-to-end runs through a server and a browser are in test_app.py and test_browser.py."""
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio.helpers import special_args
from PIL import Image

from conftest import two_faces
from fecsim import ExpressionComparer
from fecsim.web import build_demo, html
from fecsim.web.compare import compare, flag
from fecsim.web.context import AppContext, bind
from fecsim.web.flags_download import download_flags
from fecsim.web.live_mirror import live_frame, set_reference
from fecsim.web.odd_one_out import highlight_odd, odd_one_out
from fecsim.web.parts import captured, shown_error
from fecsim.web.ranking import add_capture, rank
from fecsim.uploads import Uploads
from fecsim.web.results import ResultStore


def Session():
    """What gradio hands a handler that asks for gr.Request: here only its session."""
    return gr.Request(session_hash="session-1")


@pytest.fixture(scope="module")
def ctx(random_checkpoint, tmp_path_factory):
    """The page's context, where every file the tests make counts as uploaded."""
    comparer = ExpressionComparer.load(random_checkpoint, device="cpu")
    cache = tmp_path_factory.mktemp("gradio-cache")
    return AppContext(comparer, tmp_path_factory.mktemp("flagged"),
                      results=ResultStore(tmp_path_factory.mktemp("results"), cache=cache),
                      uploads=Uploads(tmp_path_factory.getbasetemp()))


def uploaded(path) -> dict:
    """A file as gradio hands over an upload: a FileData dict with its meta."""
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


@pytest.fixture(scope="module")
def two_jpg(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("faces") / "two.jpg"
    Image.fromarray(two_faces(astronaut)).save(path, quality=92)
    return path


def test_the_page_builds_with_its_named_endpoints(ctx):
    demo = build_demo(comparer=ctx.comparer, flag_dir=ctx.flag_dir)
    public = {d["api_name"] for d in demo.get_config_file()["dependencies"]
              if d.get("api_visibility") == "public"}
    assert public == {"compare", "odd_one_out", "rank", "flag", "download_flags"}


def test_gradio_passes_the_request_to_a_bound_handler(ctx):
    request = Session()
    inputs, *_ = special_args(bind(compare, ctx), [None] * 6, request=request)
    assert inputs[-1] is request and len(inputs) == 7


def test_compare_and_flag(ctx, astronaut_jpg):
    *files, expressions_a, _, details, last = compare(ctx, str(astronaut_jpg), uploaded(astronaut_jpg))
    assert all(Image.open(f).size for f in files)
    assert details["probability"] == pytest.approx(
        ctx.comparer.compare(str(astronaut_jpg), str(astronaut_jpg)).probability, abs=1e-4)
    assert details["same"] == (details["probability"] >= details["threshold"])
    assert set(expressions_a) == set("abcdefg")
    assert "P(same expression)" in html.verdict(details)
    with pytest.raises(gr.Error, match="tick the box"):
        flag(ctx, last, "same expression", False)
    message, state = flag(ctx, last, "same expression", True)
    assert state["flagged"] and message.endswith("Thank you.")   # no count of every flag
    with pytest.raises(gr.Error, match="already flagged"):
        flag(ctx, state, "same expression", True)


def test_the_second_face_and_a_face_too_many(ctx, two_jpg, astronaut_jpg):
    details = compare(ctx, str(two_jpg), str(astronaut_jpg), face_a=2)[-2]
    assert len(details["faces_found_a"]) == 2 and details["box_a"] == details["faces_found_a"][1]
    with pytest.raises(gr.Error, match="Image B: face 3 was asked for but 1 face was found"):
        compare(ctx, str(two_jpg), str(astronaut_jpg), face_b=3, request=Session())
    assert "face 3 was asked for" in shown_error(ctx, Session())
    assert "Something went wrong" in shown_error(ctx, Session())   # shown once


def test_errors_name_the_image_not_the_server_path(ctx, astronaut_jpg, no_face_jpg):
    with pytest.raises(gr.Error, match="Image B: no photo given"):
        compare(ctx, str(astronaut_jpg), None)
    with pytest.raises(gr.Error) as raised:
        compare(ctx, str(astronaut_jpg), str(no_face_jpg))
    assert raised.value.message.startswith("Image B: ") and str(no_face_jpg) not in raised.value.message


def test_odd_one_out_highlights_the_odd_face(ctx, astronaut_jpg, two_jpg):
    *crops, answer, pairs, details = odd_one_out(ctx, str(astronaut_jpg), str(astronaut_jpg),
                                                 str(two_jpg))
    assert len(crops) == 3 and answer == f"Image {details['odd']} is the odd one out"
    assert set(pairs) == {"Images 1 and 2", "Images 1 and 3", "Images 2 and 3"}
    highlighted = highlight_odd(details)
    assert ["fecsim-odd" in image.elem_classes for image in highlighted] == [
        i == details["odd"] for i in (1, 2, 3)]


def test_rank_lists_the_faceless_last(ctx, astronaut_jpg, two_jpg, no_face_jpg):
    gallery, table = rank(ctx, str(astronaut_jpg), [str(no_face_jpg), str(two_jpg)])
    assert [row["name"] for row in table] == [two_jpg.name, no_face_jpg.name]
    assert table[1]["rank"] is None and table[1]["error"] and len(gallery) == 1
    with pytest.raises(gr.Error, match="No photos to rank"):
        rank(ctx, str(astronaut_jpg), [])


def test_captures_and_the_live_mirror(ctx, astronaut, astronaut_jpg):
    with pytest.raises(gr.Error, match="Start the camera first"):
        captured(ctx, None)
    assert Image.open(captured(ctx, astronaut)).size == (512, 512)
    photos = add_capture(ctx, astronaut, [str(astronaut_jpg)])
    assert len(photos) == 2 and photos[1].endswith("capture-2.jpg")
    crop, state, history, best = set_reference(ctx, str(astronaut_jpg))
    assert Image.open(crop).size == (48, 48) and history == [] and best is None
    shown, track, history, best, _ = live_frame(ctx, astronaut, state, None, history, best)
    assert track is not None and len(history) == 1 and best == history[0]
    assert f"{best:.0%}" in shown
    blank = np.full((240, 320, 3), 128, np.uint8)
    shown, _, history, best_after, _ = live_frame(ctx, blank, state, None, history, best)
    assert "no face" in shown and history[-1] is None and best_after == best


def test_flags_download_needs_the_token(ctx, monkeypatch, tmp_path):
    from fecsim.tokens import TokenGate
    now = [0.0]
    gate = TokenGate(clock=lambda: now[0])
    monkeypatch.delenv("FECSIM_FLAGS_TOKEN", raising=False)
    with pytest.raises(gr.Error, match="switched off"):
        download_flags("anything", ctx.flag_dir, gate, tmp_path)
    monkeypatch.setenv("FECSIM_FLAGS_TOKEN", "s3cret")
    with pytest.raises(gr.Error, match="Wrong token"):
        download_flags("guess", ctx.flag_dir, gate, tmp_path)
    with pytest.raises(gr.Error, match="Too many wrong tokens"):
        download_flags("s3cret", ctx.flag_dir, gate, tmp_path)
    now[0] += 1
    zipped = download_flags("s3cret", ctx.flag_dir, gate, tmp_path)
    # Written in gradio's cache (here tmp_path), which serves it: no other copy anywhere.
    assert zipped.endswith("flagged.zip") and Path(zipped).parent.parent == tmp_path


# --- Issue 18: the public app's safety, handler by handler. ---

@pytest.fixture
def strict(ctx, tmp_path):
    """The context as served: only files under its upload cache count (tmp_path/cache)."""
    (tmp_path / "cache").mkdir()
    return AppContext(ctx.comparer, ctx.flag_dir, results=ctx.results,
                      uploads=Uploads(tmp_path / "cache"))


def test_a_server_file_named_by_a_call_is_refused_alike_whether_it_exists_or_not(
        strict, astronaut_jpg, tmp_path):
    import shutil
    mine = tmp_path / "cache" / "abc" / "face.jpg"
    mine.parent.mkdir()
    shutil.copy(astronaut_jpg, mine)
    messages = set()
    for server_file in (astronaut_jpg, tmp_path / "missing.jpg", "/etc/passwd"):
        for value in ({"path": str(server_file)}, uploaded(server_file), str(server_file)):
            with pytest.raises(gr.Error) as refused:
                compare(strict, value, uploaded(mine))
            messages.add(refused.value.message)
            with pytest.raises(gr.Error) as refused:
                odd_one_out(strict, uploaded(mine), uploaded(mine), value)
            messages.add(refused.value.message.replace("Image 3", "Image A"))
            with pytest.raises(gr.Error) as refused:
                rank(strict, uploaded(mine), [uploaded(mine), value])
            messages.add(refused.value.message.replace("Photo 2", "Image A"))
            with pytest.raises(gr.Error):
                set_reference(strict, value)
    assert messages == {"Image A: not a photo uploaded to this app: upload it (from a script, "
                        "gradio_client's handle_file)"}
    assert compare(strict, uploaded(mine), uploaded(mine))[-2]["probability"] >= 0


def test_echoed_input_is_bounded_escaped_and_logged_as_one_line(ctx, astronaut_jpg, caplog):
    request = Session()
    with pytest.raises(gr.Error) as raised:
        compare(ctx, str(astronaut_jpg), str(astronaut_jpg), box_a="1 " * 10_000_000,
                request=request)
    assert len(raised.value.message) < 300 and raised.value.print_exception is False
    with pytest.raises(gr.Error) as raised:
        compare(ctx, str(astronaut_jpg), str(astronaut_jpg), box_a="<img src=x onerror=alert(1)>",
                request=request)
    assert "<img" not in raised.value.message and "&lt;img" in raised.value.message
    shown = shown_error(ctx, request)           # the result area escapes it once, not twice
    assert "&lt;img" in shown and "&amp;lt;" not in shown
    lines = [r for r in caplog.records if r.name == "fecsim.web"]
    assert lines and all(r.exc_info is None and "\n" not in r.getMessage() and
                         len(r.getMessage()) < 500 for r in lines)


@pytest.mark.parametrize("face", [10 ** 400, "9" * 400], ids=["an int", "a string"])
def test_a_400_digit_face_number_gets_a_message(ctx, astronaut_jpg, face):
    with pytest.raises(gr.Error, match="Image A: the face number must be a whole number >= 1"):
        compare(ctx, str(astronaut_jpg), str(astronaut_jpg), face_a=face)


def test_a_failed_flag_write_says_nothing_was_stored(ctx, astronaut_jpg, monkeypatch):
    from fecsim import flags
    last = compare(ctx, str(astronaut_jpg), str(astronaut_jpg))[-1]

    def full_disk(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(flags, "_write_synced", full_disk)
    with pytest.raises(gr.Error, match="Nothing was stored: the flag could not be written "
                                       r"\(No space left on device\)"):
        flag(ctx, last, "same expression", True)


def test_the_page_says_where_flags_go_from_the_real_folder(ctx, monkeypatch, tmp_path):
    from fecsim.web.compare import storage_note
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert "until its operator deletes them" in storage_note(tmp_path / "kept")
    monkeypatch.setenv("SPACE_ID", "user/fecsim")
    assert "only until the Space restarts" in storage_note(tmp_path / "kept")


def test_one_model_call_at_a_time_across_tabs(ctx):
    demo = build_demo(comparer=ctx.comparer, flag_dir=ctx.flag_dir)
    groups = {fn.api_name or fn.name: fn.concurrency_id for fn in demo.fns.values()}
    assert len({groups[name] for name in ("compare", "odd_one_out", "rank",
                                          "set_reference")}) == 1


def test_a_ranking_is_capped_in_total_pixels(ctx, tmp_path, monkeypatch):
    from fecsim import images
    monkeypatch.setattr(images, "MAX_REQUEST_PIXELS", 1_000_000)
    big = tmp_path / "big.png"
    Image.new("L", (1000, 600)).save(big)
    with pytest.raises(gr.Error, match="million pixels together, over the limit"):
        rank(ctx, str(big), [str(big)])


def test_the_start_up_sweep_reaches_captures_and_gradios_leftovers(ctx, tmp_path):
    import os
    import time
    old = time.time() - 7200
    capture = tmp_path / "results" / "capture-x1" / "capture-1.jpg"
    leftover = tmp_path / "cache" / "0123abcd" / "photo.jpg"
    for path in (capture, leftover):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"a user's photo")
        os.utime(path, (old, old))
    AppContext(ctx.comparer, ctx.flag_dir, uploads=ctx.uploads,
               results=ResultStore(tmp_path / "results", cache=tmp_path / "cache"))
    assert not capture.exists() and not leftover.exists()
    assert not capture.parent.exists()
