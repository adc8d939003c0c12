"""Issue 18, the safety of a public app: each case found by probing it as an attacker and as a
careless user would, outside the web layer (images, faces, text, uploads, retention, flags,
checkpoints, the CLI's CSV handling). The web app's own cases are in tests/test_app.py."""

import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.errors import BoxError, ImageError
from fecsim.faces import parse_box, parse_face_number
from fecsim.images import (WORK_MAX_SIDE, check_request_pixels, load_image, load_reduced,
                           request_pixels)
from fecsim.text import bounded, spreadsheet_safe


@pytest.fixture(scope="module")
def comparer(random_checkpoint):
    return ExpressionComparer.load(random_checkpoint, device="cpu")


# Memory bounded by design ---------------------------------------------------------------------

def test_a_palette_png_with_transparency_is_capped_on_the_rgba_it_decodes_to(tmp_path):
    # 72 MP: 72 MB as a palette, 288 MB as the RGBA it is turned into: over the 256 MB cap.
    path = tmp_path / "palette.png"
    Image.new("P", (9000, 8000), 0).save(path, transparency=0)
    with pytest.raises(ImageError, match=r"9000x8000 P would take 288 MB decoded"):
        load_image(path)


def test_a_large_jpeg_is_decoded_reduced_and_its_boxes_stay_in_original_pixels(
        tmp_path, astronaut, comparer):
    small = tmp_path / "small.jpg"
    big = tmp_path / "big.jpg"
    Image.fromarray(astronaut).save(small, quality=95)
    Image.fromarray(astronaut).resize((6144, 6144), Image.BICUBIC).save(big, quality=90)
    image, scale = load_reduced(big)
    assert max(image.size) <= WORK_MAX_SIDE and scale == pytest.approx(6144 / image.width)
    face_small, face_big = comparer.face(small), comparer.face(big)
    assert face_big.image.size == image.size and face_big.scale == pytest.approx(scale)
    # The same face, found in the reduced copy, reported in the 6144 px original's pixels.
    assert np.allclose(np.array(face_big.box) / 12, face_small.box, atol=6)
    assert np.allclose(face_big.on_image(face_big.box), np.array(face_big.box) / scale)
    # A box typed in the original's pixels means the same face.
    boxed = comparer.face(big, box=tuple(v * 12 for v in face_small.box))
    assert np.allclose(boxed.box, np.array(face_small.box) * 12, atol=1)


def test_a_rotated_large_jpeg_keeps_its_orientation_and_scale(tmp_path, astronaut):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6   # stored sideways: turn 90 degrees clockwise to view
    Image.fromarray(astronaut).resize((6000, 3000)).save(path, exif=exif)
    image, scale = load_reduced(path)
    assert image.height > image.width and max(image.size) <= WORK_MAX_SIDE
    assert scale == pytest.approx(3000 / image.width)


def test_ranking_keeps_only_crops_and_boxes(comparer, astronaut_jpg, no_face_jpg):
    ranked = comparer.rank(astronaut_jpg, [astronaut_jpg, no_face_jpg, astronaut_jpg])
    faces = [r.face for r in ranked if r.face is not None]
    assert len(faces) == 2 and all(f.image is None and f.crop is not None for f in faces)


def test_one_request_is_capped_in_total_pixels(tmp_path):
    path = tmp_path / "header.png"
    Image.new("L", (4000, 3000)).save(path)   # 12 MP by its header
    assert request_pixels([path, path, tmp_path / "missing.png", b"not an image"]) == 24_000_000
    check_request_pixels([path] * 5, limit=60_000_000)
    with pytest.raises(ImageError, match="72 million pixels together, over the limit of 60"):
        check_request_pixels([path] * 6, limit=60_000_000)


# Every failure a message, every echo bounded ---------------------------------------------------

def test_a_file_name_over_255_characters_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot open it") as caught:
        load_image(tmp_path / ("x" * 300 + ".jpg"))
    assert len(str(caught.value)) < 500   # the name itself is cut


def test_a_twenty_megabyte_box_is_refused_without_echoing_it():
    with pytest.raises(BoxError) as caught:
        parse_box("1 " * 10_000_000, "Image A")
    assert len(str(caught.value)) < 200 and "20,000,000 characters" in str(caught.value)
    with pytest.raises(BoxError) as caught:
        parse_box("<b>" + "x" * 150, "Image A")
    assert len(str(caught.value)) < 250


@pytest.mark.parametrize("value", [10 ** 400, 10 ** 5000, "9" * 400], ids=["400 digits", "5000 digits", "a 400-digit string"])
def test_a_huge_face_number_is_a_box_error_with_a_short_message(value):
    with pytest.raises(BoxError, match="whole number >= 1") as caught:
        parse_face_number(value, "Image A")
    assert len(str(caught.value)) < 250


def test_bounded_and_spreadsheet_safe():
    assert bounded("abc") == "abc"
    assert bounded("x" * 1000, 10) == "xxxxxxxxxx... (1,000 characters)"
    assert [spreadsheet_safe(v) for v in ("=1+1", "+3", "-2", "@SUM(A1)", "a.jpg", 0.5)] == \
        ["'=1+1", "'+3", "'-2", "'@SUM(A1)", "a.jpg", 0.5]


# Only this app's own files --------------------------------------------------------------------

def file_data(path, meta=True):
    return {"path": str(path), **({"meta": {"_type": "gradio.FileData"}} if meta else {})}


def test_only_files_under_the_apps_folders_are_taken(tmp_path):
    from fecsim.uploads import REFUSED, Uploads
    cache, elsewhere = tmp_path / "cache", tmp_path / "server"
    (cache / "abc").mkdir(parents=True)
    elsewhere.mkdir()
    uploaded, secret = cache / "abc" / "face.jpg", elsewhere / "secret.jpg"
    uploaded.write_bytes(b"x")
    secret.write_bytes(b"x")
    (cache / "link.jpg").symlink_to(secret)
    uploads = Uploads(cache)
    assert uploads.path(file_data(uploaded), "Image A") == str(uploaded)
    assert uploads.path(str(uploaded), "Image A") == str(uploaded)
    assert uploads.path(None, "Image A") is None
    refusals = set()
    for value in (file_data(uploaded, meta=False),               # gradio never checked it
                  file_data(secret), str(secret), file_data(elsewhere / "missing.jpg"),
                  file_data(cache / ".." / "server" / "secret.jpg"),
                  file_data(cache / "link.jpg"),                 # a link out of the cache
                  {"path": str(uploaded), "meta": {"_type": "other"}}, {"path": 5}, 7,
                  file_data("/etc/passwd"), file_data("/nonexistent/x.jpg"), "a\0b"):
        with pytest.raises(ImageError) as caught:
            uploads.path(value, "Image A")
        refusals.add(str(caught.value))
    # One refusal for all: an existing file and a missing one cannot be told apart.
    assert refusals == {f"Image A: {REFUSED}"}


# Photos gone when promised --------------------------------------------------------------------

def written(path, age=0.0):
    """A file at path, last changed `age` seconds ago."""
    import os
    import time
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_the_sweep_reaches_into_folders_and_spares_what_is_young(tmp_path):
    import os
    from fecsim.retention import Sweeper, sweep
    written(tmp_path / "capture-abc" / "capture-1.jpg", 7200)   # a photo captured into the set
    written(tmp_path / "deep" / "er" / "old.png", 7200)
    young = written(tmp_path / "deep" / "young.png")
    outside = written(tmp_path.parent / f"{tmp_path.name}-outside.jpg", 7200)
    (tmp_path / "link").symlink_to(outside)
    os.utime(tmp_path / "link", (1, 1), follow_symlinks=False)
    assert sweep(tmp_path, 3600) == 3
    assert not (tmp_path / "capture-abc").exists() and not (tmp_path / "deep" / "er").exists()
    assert young.exists() and outside.exists()   # the link went, never what it pointed to
    assert not os.path.lexists(tmp_path / "link")
    sweeper = Sweeper([tmp_path], 3600, every=600)
    os.utime(young, (1, 1))
    assert sweeper.now() == 1 and sweeper.maybe() == 0   # not again within `every`
    outside.unlink()


def test_a_sweep_of_gradios_cache_spares_what_this_process_made(tmp_path):
    import os
    import time
    from fecsim.retention import sweep
    started = time.time() - 60
    leftover = written(tmp_path / "abc" / "upload.jpg", 7200)          # from before a crash
    example = written(tmp_path / "def" / "example.jpg")
    os.utime(example, (started + 1, started + 1))     # made since the start, over 30 s ago
    assert sweep(tmp_path, 30, changed_before=started) == 1
    assert not leftover.exists() and example.exists()


# Token guessing -------------------------------------------------------------------------------

def test_wrong_tokens_are_answered_with_a_growing_delay():
    from fecsim.tokens import MAX_DELAY, TokenGate, TokenRefused
    now = [1000.0]
    gate = TokenGate(clock=lambda: now[0])
    gate.check("s3cret", "s3cret")
    delays = []
    for _ in range(12):
        with pytest.raises(TokenRefused, match="Wrong token"):
            gate.check("guess", "s3cret")
        with pytest.raises(TokenRefused, match="Too many wrong tokens"):
            gate.check("s3cret", "s3cret")      # even the right one waits: guessing cannot go round it
        delays.append(gate._open_at - now[0])
        now[0] = gate._open_at
    assert delays[:4] == [1, 2, 4, 8] and delays[-1] == MAX_DELAY
    gate.check("s3cret", "s3cret")    # after the wait the right token works, and resets
    with pytest.raises(TokenRefused, match="in 1 s"):
        gate.check("x" * 10_000_000, "s3cret")


# Checkpoints: the model's shape bounded and type-checked --------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"head": "bogus"}, "model.head"),
    ({"embed_dim": -1}, "model.embed_dim"),
    ({"pair_hidden": "64"}, "model.pair_hidden"),
    ({"num_classes": 1_000_000_000}, "model.num_classes"),   # would allocate 512 GB
    ({"num_classes": True}, "model.num_classes"),
    ({"class_names": ["a", 5]}, "model.class_names"),
    ({"num_classes": 3, "class_names": ["a", "b"]}, "model.class_names"),
    ({"mean": [0.5, 0.5]}, "model.mean"),
    ({"std": [0.2, 0.0, 0.2]}, "model.std"),
    ({"pair_score": "bogus"}, "model.pair_score"),
    ({"pair_temperature": 0}, "model.pair_temperature"),
    ({"geometry": "yes"}, "model.geometry"),
    ({"pair_score": "expressions", "num_classes": 0}, "model.pair_score"),
])
def test_bad_model_fields_are_a_checkpoint_error(tmp_path, change, field):
    import json
    import re
    import torch
    from safetensors.torch import save_file
    from conftest import TINY_META
    from fecsim import checkpoint
    from fecsim.errors import CheckpointError
    from fecsim.model import ModelConfig
    meta = dict(TINY_META, format=checkpoint.FORMAT, model={**ModelConfig().to_dict(), **change})
    path = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"fecsim": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=rf"metadata field {re.escape(field)}\b"):
        ExpressionComparer.load(path, "cpu")


# The CLI: one bad row or a bad --out never loses a batch ---------------------------------------

def test_every_bad_row_is_its_own_error_and_cells_are_spreadsheet_safe(comparer, astronaut_jpg,
                                                                       tmp_path):
    import csv
    import shutil
    from fecsim.csv_scoring import score_csv
    shutil.copy(astronaut_jpg, tmp_path / "a.jpg")
    shutil.copy(astronaut_jpg, tmp_path / "=HYPERLINK(x).jpg")
    lines = ["a,b,note", "a.jpg,a.jpg,fine", f"{'x' * 300}.jpg,a.jpg,long name",
             f"{'y' * 200_000},a.jpg,huge field", "=HYPERLINK(x).jpg,a.jpg,@SUM(A1)",
             "a.jpg,a.jpg,-2+3"]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    rows, failed = score_csv(comparer, tmp_path / "pairs.csv", tmp_path / "out.csv", ("a", "b"))
    assert (rows, failed) == (5, 2)
    out = list(csv.DictReader(open(tmp_path / "out.csv", newline="")))
    assert [bool(r["error"]) for r in out] == [False, True, True, False, False]
    assert "cannot open it" in out[1]["error"] and len(out[1]["error"]) < 600
    assert "field larger than field limit" in out[2]["error"]
    assert out[3]["a"] == "'=HYPERLINK(x).jpg" and out[3]["note"] == "'@SUM(A1)"
    assert out[4]["note"] == "'-2+3" and out[3]["probability"]


def test_a_duplicate_header_is_refused(comparer, tmp_path):
    from fecsim.csv_scoring import score_csv
    from fecsim.errors import FecsimError
    (tmp_path / "pairs.csv").write_text("a,b,a\nx.jpg,y.jpg,z.jpg\n")
    with pytest.raises(FecsimError, match="duplicate column\\(s\\) 'a'"):
        score_csv(comparer, tmp_path / "pairs.csv", tmp_path / "out.csv", ("a", "b"))


def test_a_bad_out_is_refused_before_any_scoring(tmp_path, monkeypatch, capsys):
    from fecsim import cli
    (tmp_path / "pairs.csv").write_text("a,b\nx.jpg,y.jpg\n")

    def never(*_, **__):
        raise AssertionError("the model was loaded before --out was checked")
    monkeypatch.setattr(cli.ExpressionComparer, "load", never)
    for out, reason in ((tmp_path, "is a folder"), (tmp_path / "no" / "o.csv", "does not exist")):
        assert cli.main(["score-pairs", str(tmp_path / "pairs.csv"), "--out", str(out)]) == 2
        assert reason in capsys.readouterr().err
