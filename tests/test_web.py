"""The web app's handlers called directly, as the page's events call them (no server): fast tier.
The end-to-end runs through a server and a browser are in test_app.py and test_browser.py."""
import re
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
from fecsim.web.live_mirror import live_frame, next_student, set_reference
from fecsim.web.odd_one_out import highlight_odd, odd_one_out
from fecsim.web.parts import captured, shown_error
from fecsim.uploads import Uploads
from fecsim.web.ranking import add_capture, rank, show_ranking
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
    assert [row["name"] for row in table] == ["two", "coffee"]
    assert table[1]["rank"] is None and table[1]["error"] and len(gallery) == 1
    message, shown, download = show_ranking(ctx, table)
    assert "<td>two</td>" in shown and "not scored: no face found" in shown
    csv_path = Path(download.value["path"])
    assert csv_path.name == "ranking.csv"
    assert csv_path.read_text().splitlines()[2].startswith(',coffee,,"not scored: no face found')
    with pytest.raises(gr.Error, match="No photos to rank"):
        rank(ctx, str(astronaut_jpg), [])


def test_captures_and_the_live_mirror(ctx, astronaut, astronaut_jpg):
    with pytest.raises(gr.Error, match="Start the camera first"):
        captured(ctx, None)
    assert Image.open(captured(ctx, astronaut)).size == (512, 512)
    photos, name = add_capture(ctx, astronaut, [str(astronaut_jpg)], "Ana")
    assert len(photos) == 2 and Path(photos[1]).name == "Ana.jpg" and name == ""
    photos, _ = add_capture(ctx, astronaut, photos, "")
    assert Path(photos[2]).name == "capture 3.jpg"
    assert "Choose a reference face first" in live_frame(ctx, astronaut, Session())[0]
    crop = set_reference(ctx, str(astronaut_jpg), Session())
    assert Image.open(crop).size == (48, 48)
    shown, frame = live_frame(ctx, astronaut, Session())
    assert "1 frame scored" in shown and "1 person live" in shown and frame is astronaut
    blank = np.full((240, 320, 3), 128, np.uint8)
    shown, _ = live_frame(ctx, blank, Session())
    assert "no face" in shown and "1 frame scored" in shown
    assert "Next student" in next_student(ctx, Session())
    assert "0 frames scored" in live_frame(ctx, blank, Session())[0]
    assert set_reference(ctx, None, Session()) is None   # the reference removed


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
                set_reference(strict, value, Session())
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



def test_the_page_says_which_face_was_used_and_how_many_were_too_small(ctx, two_jpg, astronaut,
                                                                       tmp_path):
    note = html.verdict(compare(ctx, str(two_jpg), str(two_jpg))[-2])
    assert "2 faces in A; 2 faces in B. The largest is used" in note
    note = html.verdict(compare(ctx, str(two_jpg), str(two_jpg), face_a=2)[-2])
    assert "face 2 of 2 in A; 2 faces in B" in note   # B still on its largest
    note = html.verdict(compare(ctx, str(two_jpg), str(two_jpg), face_a=2, face_b=2)[-2])
    assert "face 2 of 2 in B" in note and "largest" not in note
    # A group photo whose second face is under the size detection uses (the back row).
    group = Image.new("RGB", (1000, 520), (230, 230, 230))
    group.paste(Image.fromarray(astronaut), (0, 4))
    group.paste(Image.fromarray(astronaut).resize((160, 160)), (700, 150))
    group.save(tmp_path / "group.jpg", quality=92)
    details = compare(ctx, str(tmp_path / "group.jpg"), str(two_jpg))[-2]
    assert details["too_small_a"] == 1 and details["too_small_b"] == 0
    assert "1 face in A (and 1 too small to use)" in html.verdict(details)


def test_the_verdict_is_a_mark_and_a_word_not_only_a_colour():
    details = {"same": False, "probability": 0.1, "threshold": 0.28, "verdict": "different expression",
               "faces_found_a": [[0, 0, 1, 1]], "faces_found_b": [[0, 0, 1, 1]], "model_seconds": 0.2,
               "seconds": 0.3}
    shown = html.verdict(details)
    assert "\u2717</span> Different expression" in shown and "fecsim-different" in shown
    assert "\u2713</span> Same expression" in html.verdict(dict(details, same=True, probability=0.9,
                                                                 verdict="same expression"))


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("mode, backgrounds", [
    (":root", ["#ffffff", "#fafafa"]),               # gradio's light page and panels
    (".dark", ["#0f0f11", "#18181b", "#27272a"]),    # its dark page, panels and blocks
])
def test_the_palette_meets_wcag_aa(mode, backgrounds):
    """Text 4.5:1 against every background it sits on; the bar 3:1 against its track (WCAG's
    non-text contrast); the primary button's white text 4.5:1."""
    block = re.search(re.escape(mode) + r" \{([^}]*)\}", html.CSS).group(1)
    colour = dict(re.findall(r"--([\w-]+): (#[0-9a-f]{6})", block))
    texts = ("fecsim-same", "fecsim-different", "fecsim-note", "body-text-color-subdued")
    for text in (t for t in texts if t in colour):   # gradio's subdued grey: light mode only
        assert min(contrast(colour[text], bg) for bg in backgrounds) >= 4.5, text
    assert contrast(colour["fecsim-error-text"], colour["fecsim-error-fill"]) >= 4.5
    for fill in ("fecsim-same", "fecsim-different", "fecsim-mark"):
        assert contrast(colour[fill], colour["fecsim-track"]) >= 3, fill
    assert contrast("#ffffff", colour["button-primary-background-fill"]) >= 4.5


def test_the_verdict_says_how_each_face_was_read():
    details = {"same": True, "probability": 0.8, "threshold": 0.5, "verdict": "same expression",
               "model_seconds": 0.1, "seconds": 0.2}
    both = dict(details, views_a=["appearance", "geometry"], views_b=["appearance", "geometry"])
    assert "Both faces read by their look and shape." in html.verdict(both)
    one = dict(details, views_a=["appearance", "geometry"], views_b=["appearance"])
    assert "Face A read by its look and shape; B by its look alone." in html.verdict(one)
    assert "Both faces read by their look." in html.verdict(details)   # older models
