"""How the page looks: HTML for the verdict, the probability bar, errors; all the page's CSS (but
the live mirror's, in live_html.py) and the JavaScript its buttons run in the browser.

Sized to be read from the back of a classroom: the verdict in large coloured type, the probability
as a bar with the model's threshold marked on it. Every value is escaped; no script runs.
"""
from __future__ import annotations

from html import escape

CSS = """
.fecsim-verdict { font-size: 2.4rem; font-weight: 800; line-height: 1.1; margin: .2rem 0; }
.fecsim-same { color: #15803d; } .fecsim-different { color: #b91c1c; }
.fecsim-bar { position: relative; height: 1.6rem; border-radius: .4rem; background: #e5e7eb;
              margin: .4rem 0 1.4rem; }
.fecsim-bar-fill { height: 100%; border-radius: .4rem; }
.fecsim-bar-threshold { position: absolute; top: -.3rem; bottom: -.3rem; width: 3px;
                        background: #111827; }
.fecsim-bar-threshold span { position: absolute; top: 2rem; left: -3rem; width: 6rem;
                             text-align: center; font-size: .8rem; }
.fecsim-probability { font-size: 1.4rem; font-weight: 700; }
.fecsim-error { border: 2px solid #b91c1c; background: #fef2f2; color: #7f1d1d;
                border-radius: .5rem; padding: .6rem .8rem; font-size: 1.1rem; }
.fecsim-note { color: #4b5563; font-size: .9rem; }
.fecsim-live { font-size: 3.2rem; font-weight: 800; }
.fecsim-odd img { outline: 6px solid #f59e0b; outline-offset: -6px; }
#odd_answer * { font-size: 2rem !important; font-weight: 800; }
.fecsim-crop img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
/* Two expression lists side by side on a phone: small enough that the percentages stay in view. */
@media (max-width: 480px) {
  #expressions_a h2.output-class, #expressions_b h2.output-class { font-size: 1.25rem; }
  #expressions_a dl.label, #expressions_b dl.label { font-size: 0.75rem; }
}
"""

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


def verdict(details: dict) -> str:
    """The verdict, P(same expression) as a bar with the threshold marked, faces found."""
    same, p, threshold = details["same"], details["probability"], details["threshold"]
    found = [len(details.get(f"faces_found_{k}") or [None]) for k in "ab"]
    faces = ", ".join(f"{n} face{'s' if n != 1 else ''} in {k}" for n, k in zip(found, "AB"))
    more = (" (the largest is used: pick another under <em>Choose the face</em>)"
            if max(found) > 1 else "")
    return (f'<div class="fecsim-verdict fecsim-{"same" if same else "different"}">'
            f'{escape(details["verdict"]).capitalize()}</div>'
            f'<div class="fecsim-probability">P(same expression) = {p:.0%}</div>'
            + bar(p, threshold) +
            f'<div class="fecsim-note">Found {faces}{more}. '
            f'Model: {details["model_seconds"]:.2f} s; you waited '
            f'<span id="waited">{details["seconds"]:.2f} s</span> (queue included).</div>')


def bar(p: float, threshold: float) -> str:
    colour = "#16a34a" if p >= threshold else "#dc2626"
    return (f'<div class="fecsim-bar" role="meter" aria-valuenow="{p:.4f}" aria-valuemin="0" '
            f'aria-valuemax="1" aria-label="P(same expression)">'
            f'<div class="fecsim-bar-fill" style="width:{p:.1%};background:{colour}"></div>'
            f'<div class="fecsim-bar-threshold" style="left:{threshold:.1%}">'
            f'<span>threshold {threshold:.0%}</span></div></div>')


def error(message: str) -> str:
    return (f'<div class="fecsim-error" role="alert"><strong>Cannot compare.</strong> '
            f'{escape(message)}</div>')
