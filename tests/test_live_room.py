"""The live room: many sessions scored at once, each in its own line, fairly, within capacity."""
import base64
import html
import io
import re
import threading

import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.web.live_html import CLOSED_MARK, live_panel, score_line
from fecsim.live_room import LiveReading, LiveRoom


@pytest.fixture(scope="module")
def comparer(random_checkpoint):
    return ExpressionComparer.load(random_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def reference_z(comparer, astronaut):
    mirrored = Image.fromarray(astronaut).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return comparer.features([comparer.face(mirrored)])


@pytest.fixture(scope="module")
def face_frame(astronaut):
    """A 640x480 webcam frame with the astronaut's face in it."""
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(Image.fromarray(astronaut).resize((400, 400)), (120, 40))
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def empty_frame():
    return np.full((480, 640, 3), 90, np.uint8)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_sessions_in_threads_are_all_scored_and_batched(comparer, reference_z, face_frame):
    room = LiveRoom(comparer)
    keys = [f"page-{i}" for i in range(4)]
    for key in keys:
        room.set_reference(key, reference_z)
    readings = {key: [] for key in keys}

    def stream(key):
        for _ in range(8):
            readings[key].append(room.score(key, face_frame))

    threads = [threading.Thread(target=stream, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = float(comparer.pair_probabilities(
        reference_z, comparer.features([comparer.face(Image.fromarray(face_frame))]))[0])
    for key in keys:
        assert [r.state for r in readings[key]] == ["scored"] * 8
        assert readings[key][-1].frames_scored == 8
        assert readings[key][-1].live == 4
        for r in readings[key]:   # a crop embedded in a batch scores as it does alone
            assert r.probability == pytest.approx(expected, abs=0.02)
    assert sum(room.encoder.batch_sizes) == 32


def test_one_frame_in_work_per_session(comparer, reference_z, face_frame, monkeypatch):
    # A page that sends faster than it is served gets no second frame in work: no more than its
    # share, while another page's frame goes ahead.
    room = LiveRoom(comparer)
    room.set_reference("fast", reference_z)
    room.set_reference("other", reference_z)
    release, started = threading.Event(), threading.Event()
    real = room._probability

    def held(image, reference, track):
        if threading.current_thread().name == "held":
            started.set()
            release.wait(10)
        return real(image, reference, track)

    monkeypatch.setattr(room, "_probability", held)
    first = threading.Thread(target=room.score, args=("fast", face_frame), name="held")
    first.start()
    assert started.wait(10)
    assert room.score("fast", face_frame) is None
    assert room.score("other", face_frame).state == "scored"
    release.set()
    first.join()
    assert room.score("fast", face_frame).frames_scored == 2


def test_the_counter_counts_past_the_history_and_the_line_keeps_gaps(
        comparer, reference_z, face_frame, empty_frame):
    room = LiveRoom(comparer, history=6)
    room.set_reference("page", reference_z)
    for i in range(11):
        reading = room.score("page", empty_frame if i == 6 else face_frame)
    assert reading.frames_scored == 10
    assert len(reading.history) == 6
    assert reading.history[-5] is None and all(p is not None for p in reading.history[-4:])
    blank = room.score("page", empty_frame)
    assert (blank.state, blank.probability, blank.history[-1]) == ("no face", None, None)
    assert blank.frame is not None and blank.best == reading.best   # the frame looked at


def test_next_student_and_a_new_reference_start_again(comparer, reference_z, face_frame):
    room = LiveRoom(comparer)
    room.set_reference("page", reference_z)
    for _ in range(3):
        room.score("page", face_frame)
    room.next_student("page")
    reading = room.score("page", face_frame)
    assert (reading.frames_scored, len(reading.history)) == (1, 1)
    assert reading.best == reading.probability
    room.set_reference("page", reference_z)
    assert room.score("page", face_frame).frames_scored == 1
    room.set_reference("page", None)   # reference cleared: nothing to score against
    assert room.score("page", face_frame).state == "no reference"
    assert room.score("never-chose-one", face_frame).state == "no reference"


def test_over_capacity_a_later_session_waits_in_line(comparer, reference_z, face_frame):
    clock = Clock()
    room = LiveRoom(comparer, capacity=2, gone_seconds=5, clock=clock)
    for key in ("a", "b", "c", "d"):
        room.set_reference(key, reference_z)
        clock.now += 0.1
        room.score(key, face_frame)
    c, d = room.score("c", face_frame), room.score("d", face_frame)
    assert (c.state, c.live, c.place, c.probability) == ("busy", 4, 1, None)
    assert (d.state, d.place) == ("busy", 2)
    # "a" stops its camera: once it has sent nothing for 5 s, "c" is let in, then "d" moves up.
    for _ in range(2):
        clock.now += 3
        for key in ("b", "c", "d"):
            room.score(key, face_frame)
    assert room.score("c", face_frame).state == "scored"
    assert room.score("d", face_frame).place == 1
    assert room.live() == 3
    # "a" starts again: at the end of the line.
    assert room.score("a", face_frame).place == 2


def test_a_stream_without_a_face_for_two_minutes_is_closed(comparer, reference_z, face_frame,
                                                           empty_frame):
    clock = Clock()
    room = LiveRoom(comparer, idle_seconds=120, gone_seconds=60, clock=clock)
    room.set_reference("page", reference_z)
    room.set_reference("other", reference_z)
    assert room.score("page", face_frame).state == "scored"
    for _ in range(3):
        clock.now += 50
        room.score("other", face_frame)
        reading = room.score("page", empty_frame)
    assert reading.state == "closed"
    assert room.live() == 1   # the closed one holds no place
    for _ in range(3):   # still sending (its page did not stop the camera): still closed
        clock.now += 0.5
        assert room.score("page", face_frame).state == "closed"
    clock.now += 2   # its camera was stopped, then started again
    assert room.score("page", face_frame).state == "scored"


def test_an_error_in_the_model_reaches_every_caller_and_frees_the_session(
        comparer, reference_z, face_frame, monkeypatch):
    room = LiveRoom(comparer)
    room.set_reference("page", reference_z)

    def broken(crops):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(comparer, "features", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        room.score("page", face_frame)
    monkeypatch.undo()
    assert room.score("page", face_frame).state == "scored"


# How a reading looks on the page.

def reading(**changes) -> LiveReading:
    frame = Image.new("RGB", (640, 480), (90, 90, 90))
    base = {"state": "scored", "probability": 0.8, "box": (100.0, 50.0, 300.0, 290.0),
            "frame": frame, "best": 0.9, "history": (0.5, 0.6, None, 0.7, None, None, 0.8, 0.8),
            "frames_scored": 75, "live": 3}
    return LiveReading(**{**base, **changes})


def text(page: str) -> str:
    """The words a person reads (inline tags dropped, block tags as spaces)."""
    page = re.sub(r"<[^>]+>", " ", re.sub(r"</?strong>", "", page))
    return re.sub(r"\s+", " ", html.unescape(page)).strip()


def test_the_verdict_is_a_word_and_a_mark_not_only_a_colour():
    assert "✓ Same expression" in text(live_panel(reading(), 0.5))
    different = text(live_panel(reading(probability=0.3), 0.5))
    assert "30%" in different and "✗ Different expression" in different
    assert "no face in this frame" in text(live_panel(reading(probability=None, box=None), 0.5))


def test_the_panel_counts_every_frame_and_says_who_is_live():
    note = text(live_panel(reading(), 0.5))
    assert "Best so far: 90%. 75 frames scored. 3 people live." in note
    assert "1 person live." in text(live_panel(reading(live=1), 0.5))


def test_the_score_sits_beside_the_frame_it_belongs_to():
    page = live_panel(reading(), 0.5)
    data = re.search(r'src="data:image/jpeg;base64,([^"]+)" alt="([^"]+)"', page)
    assert data and "face boxed" in data.group(2)
    shown = Image.open(io.BytesIO(base64.b64decode(data.group(1))))
    assert shown.size == (214, 160)   # reduced by 3, the last column from what is left
    r, g, _ = shown.convert("RGB").getpixel((round(100 / 3), round(150 / 3)))   # box edge
    assert g > 150 and r < 120


def test_the_line_breaks_where_no_face_was_found():
    line = score_line((0.5, 0.6, None, 0.7, None, None, 0.8, 0.8), 0.5)
    assert line.count("<polyline") == 2 and line.count("<circle") == 1
    assert score_line((None, None), 0.5) == ""


def test_busy_and_closed_say_what_to_do():
    busy = text(live_panel(reading(state="busy", probability=None, frame=None, live=9, place=2),
                           0.5))
    assert busy.startswith("Busy: 9 people live. You are number 2 in line")
    assert "You are next in line" in text(live_panel(reading(state="busy", place=1), 0.5))
    closed = live_panel(reading(state="closed", probability=None, frame=None), 0.5)
    assert CLOSED_MARK in closed and "Press Record" in closed
    assert "Choose a reference face first" in text(live_panel(LiveReading("no reference"), 0.5))
