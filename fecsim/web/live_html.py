"""How a live mirror reading looks on the page, and the script that stops its camera.

The score sits beside the frame it was computed from (the face boxed), so what the page says and
what it shows always agree, however far the live preview has moved on. The verdict is a word and
a mark as well as a colour. The score line breaks where a frame had no face. Every value is a
number or fixed text: nothing from a user reaches the HTML.
"""
from __future__ import annotations

import base64
import io
from itertools import groupby

from PIL import ImageDraw

from ..live_room import HISTORY, IDLE_SECONDS, LiveReading
from ..scoring import is_same
from .html import bar

FRAME_WIDTH = 192      # pixels of the scored frame shown beside its score
CLOSED_MARK = "data-live-closed"   # the page's script stops the camera when it sees this

CSS = """
.fecsim-live-now { display: flex; gap: 1rem; align-items: center; }
.fecsim-live-now img { width: 192px; max-width: 45%; border-radius: .4rem; }
.fecsim-live-verdict { font-size: 1.6rem; font-weight: 800; }
.fecsim-live-state { border: 2px solid currentColor; border-radius: .5rem; padding: .6rem .8rem;
                     font-size: 1.2rem; }
"""

# Run by the score panel when the page loads: it stops the camera when the server closed the
# stream (no face for 2 minutes), and after the page has been hidden for as long, so that a
# forgotten tab holds no place.
PAGE_HOOKS = f"""
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
NEXT_STUDENT = ('<div class="fecsim-live-state" role="status">Next student: the best score and '
                'the line start again.</div>')


def live_panel(reading: LiveReading, threshold: float) -> str:
    """The reading as the live score panel: busy, closed, or the scored frame and its score."""
    if reading.state == "busy":
        line = "You are next in line" if reading.place == 1 else \
            f"You are number {reading.place} in line"
        return (f'<div class="fecsim-live-state" role="status"><strong>Busy: {reading.live} '
                f'people live.</strong> {line}; scoring starts as soon as someone stops their '
                f'camera.</div>')
    if reading.state == "no reference":
        return ('<div class="fecsim-live-state" role="status">Choose a reference face first: '
                'upload one, pick an example, or use the camera\'s face.</div>')
    if reading.state == "closed":
        return (f'<div class="fecsim-live-state" role="status" {CLOSED_MARK}="1"><strong>'
                f'Stopped:</strong> no face for {IDLE_SECONDS // 60} minutes, so the camera was '
                f'stopped to make room for others. Press Record under the camera to go on.</div>')
    p = reading.probability
    if p is None:
        score = '<div class="fecsim-live">no face</div><div>in this frame</div>'
    else:
        same = is_same(p, threshold)
        score = (f'<div class="fecsim-live">{p:.0%}</div><div class="fecsim-live-verdict '
                 f'fecsim-{"same" if same else "different"}">'
                 f'{"&#10003; Same" if same else "&#10007; Different"} expression</div>')
    best = "" if reading.best is None else f"Best so far: <strong>{reading.best:.0%}</strong>. "
    people = f"{reading.live} {'person' if reading.live == 1 else 'people'} live."
    return (f'<div class="fecsim-live-now">{frame_image(reading)}<div>{score}</div></div>'
            + (bar(p, threshold) if p is not None else "")
            + score_line(reading.history, threshold) +
            f'<div class="fecsim-note">{best}{reading.frames_scored} '
            f'frame{"" if reading.frames_scored == 1 else "s"} scored. {people}'
            f'</div>')


def frame_image(reading: LiveReading) -> str:
    """The frame the score belongs to, small, with the face boxed, inline as a JPEG."""
    if reading.frame is None:
        return ""
    factor = max(1, reading.frame.width // FRAME_WIDTH)
    small = reading.frame.reduce(factor)   # a box filter by a whole factor: ~10x faster to make
    if reading.box is not None:
        ImageDraw.Draw(small).rectangle([v / factor for v in reading.box], outline="#22c55e",
                                        width=3)
    buffer = io.BytesIO()
    small.save(buffer, "jpeg", quality=75)
    what = "the face boxed" if reading.box is not None else "no face found"
    return (f'<img src="data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}" '
            f'alt="The camera frame this score was computed from, {what}">')


def score_line(values, threshold: float, width: int = 300, height: int = 60) -> str:
    """The recent scores as a line, the newest at the right, broken where a frame had no face
    (a lone score between gaps is a dot); the threshold dashed."""
    slots = max(HISTORY, len(values))
    step, offset = width / (slots - 1), slots - len(values)
    runs = [[((offset + i) * step, height * (1 - v)) for i, v in run]
            for scored, run in groupby(enumerate(values), key=lambda iv: iv[1] is not None)
            if scored]
    if not runs:
        return ""
    marks = "".join(
        f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}" fill="none" '
        f'stroke="#2563eb" stroke-width="2"/>' if len(run) > 1 else
        f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" fill="#2563eb"/>'
        for run in runs)
    line = height * (1 - threshold)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="recent scores, broken where no face was found">'
            f'<rect width="{width}" height="{height}" fill="#f3f4f6"/>'
            f'<line x1="0" x2="{width}" y1="{line:.1f}" y2="{line:.1f}" stroke="#6b7280" '
            f'stroke-dasharray="4 3"/>{marks}</svg>')
