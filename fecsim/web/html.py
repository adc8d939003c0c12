"""How the page looks: HTML for the verdict, the probability bar, the ranking table, errors; all
the page's CSS (but the live mirror's, in live_html.py) and the JavaScript it runs in the browser.

Sized to be read from the back of a classroom: the verdict in large coloured type with a mark and
a word, the probability as a bar with the model's threshold marked on it, a projector mode with
larger type. Every value in the HTML is escaped.
"""
from __future__ import annotations

from html import escape

from .. import leaderboard

CSS = """
/* The palette, light and dark: every text colour here is 4.5:1 or more against the page, and the
   verdict also carries a mark and a word, never colour alone (tests/test_browser.py measures it). */
:root { --fecsim-same: #15803d; --fecsim-different: #b91c1c; --fecsim-note: #4b5563;
        --fecsim-track: #e5e7eb; --fecsim-mark: #111827; --fecsim-error-text: #7f1d1d;
        --fecsim-error-fill: #fef2f2; --fecsim-odd: #b45309;
        --button-primary-background-fill: #c2410c; --button-primary-background-fill-hover: #9a3412;
        --body-text-color-subdued: #52525b; }
.dark { --fecsim-same: #4ade80; --fecsim-different: #fca5a5; --fecsim-note: #d4d4d8;
        --fecsim-track: #52525b; --fecsim-mark: #fafafa; --fecsim-error-text: #fecaca;
        --fecsim-error-fill: #450a0a; --fecsim-odd: #fbbf24;
        --button-primary-background-fill: #c2410c; --button-primary-background-fill-hover: #9a3412; }
button[role=tab].selected { color: var(--body-text-color); }
footer, footer a, footer button { color: var(--body-text-color) !important; }
h1 { font-size: 1.6rem !important; margin: 0 !important; }
.fecsim-verdict { font-size: 2.2rem; font-weight: 800; line-height: 1.1; margin: .2rem 0; }
.fecsim-same { color: var(--fecsim-same); } .fecsim-different { color: var(--fecsim-different); }
.fecsim-bar { position: relative; height: 1.6rem; border-radius: .4rem;
              background: var(--fecsim-track); margin: .4rem 0 .2rem; }
.fecsim-bar-fill { height: 100%; border-radius: .4rem; }
.fecsim-bar-fill.fecsim-same { background: var(--fecsim-same); }
/* Below the threshold the fill is striped as well as red: told apart without colour. */
.fecsim-bar-fill.fecsim-different { background: repeating-linear-gradient(135deg,
    var(--fecsim-different) 0 .5rem, transparent .5rem .75rem); }
.fecsim-bar-threshold { position: absolute; top: -.3rem; bottom: -.3rem; width: 3px;
                        background: var(--fecsim-mark); }
.fecsim-threshold { position: relative; height: 1.6rem; font-size: 1.125rem; }
.fecsim-threshold span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.fecsim-probability { font-size: 1.5rem; font-weight: 700; }
.fecsim-error { border: 2px solid var(--fecsim-different); background: var(--fecsim-error-fill);
                color: var(--fecsim-error-text); border-radius: .5rem; padding: .6rem .8rem;
                font-size: 1.1rem; }
.fecsim-note { color: var(--fecsim-note); font-size: 1rem; }
.fecsim-live { font-size: 3.2rem; font-weight: 800; }
.fecsim-ranking { width: 100%; font-size: 1.25rem; border-collapse: collapse; }
.fecsim-ranking th, .fecsim-ranking td { text-align: left; padding: .3rem .6rem;
                                         border-bottom: 1px solid var(--border-color-primary); }
.fecsim-ranking { table-layout: fixed; overflow-wrap: anywhere; }
.fecsim-ranking caption { caption-side: bottom; text-align: left; font-size: 1rem;
                          color: var(--fecsim-note); padding-top: .3rem; }
.fecsim-ranking .fecsim-rank { width: 4.5em; } .fecsim-ranking th:nth-child(2) { width: 28%; }
.fecsim-ranking .fecsim-score { width: 4.5em; font-weight: 700; }
@media (max-width: 480px) { .fecsim-ranking { font-size: 1.125rem; }
  .fecsim-ranking .fecsim-rank { width: 2.2em; font-size: 0; }
  .fecsim-ranking .fecsim-rank::after { content: "#"; font-size: 1.125rem; } }
.fecsim-odd img { outline: 6px solid var(--fecsim-odd); outline-offset: -6px; }
#odd_answer * { font-size: 2rem !important; font-weight: 800; }
.fecsim-crop img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
#capture_a, #capture_b { font-size: 1rem !important; padding: .4rem !important; }
#pair_examples img { max-height: 56px; }
#pair_examples td { padding: 2px 6px; font-size: 1rem; }
/* Beside the inputs, the result stays in view while the inputs and examples scroll. */
@media (min-width: 900px) { #result, #ranking_result { position: sticky; top: 0;
                                                        align-self: flex-start; } }
/* Two expression lists side by side on a phone: small enough that the percentages stay in view. */
@media (max-width: 480px) {
  #expressions_a dl.label, #expressions_b dl.label { font-size: 0.75rem; }
  .fecsim-verdict { font-size: 1.75rem; } #projector { display: none; }
  /* The two photos, and the two photos with their faces boxed, side by side. */
  #image_a, #image_b, #boxed_a, #boxed_b { min-width: min(140px, 100%) !important; }
  #image_1, #image_2, #image_3, #crop_1, #crop_2, #crop_3 { min-width: 90px !important; }
  #pair_examples .container, #triplet_examples .container { width: 52px; height: 52px; }
  #pair_examples img, #triplet_examples img { max-height: 48px; }
  #pair_examples td, #triplet_examples td { font-size: .9rem; padding: 2px 4px; }
}
/* On a narrow screen the result comes right after the inputs, before the examples. */
@media (max-width: 899px) {
  #compare_inputs { display: contents; }
  #compare_inputs > * { flex: 1 1 100%; }
  #result { order: 1; } #pair_examples, #choose_face { order: 2; }
}
/* Projector: larger type for the numbers, no introduction (!important: gradio scopes the
   page's rules under its container, which outranks a class on <body>). */
.fecsim-projector .fecsim-intro { display: none !important; }
.fecsim-projector .fecsim-verdict { font-size: 2.8rem !important; }
.fecsim-projector #result { flex-grow: 4 !important; }
.fecsim-projector .fecsim-probability { font-size: 2rem !important; }
.fecsim-projector .fecsim-threshold { font-size: 1.5rem !important; height: 2.2rem !important; }
.fecsim-projector .fecsim-note { font-size: 1.25rem !important; }
.fecsim-projector .fecsim-live { font-size: 5rem !important; }
.fecsim-projector .fecsim-ranking { font-size: 1.6rem !important; }
"""

# The time the user waited, measured in the browser from the click to the result (queue
# included): the server cannot see the queue in front of it. Old toasts are closed: the result
# area shows the error that matters.
START_CLOCK = """(...args) => { window.fecsimClick = performance.now();
  document.querySelectorAll('[data-testid=toast-close]').forEach(b => b.click());
  return args; }"""
# ... and the result is brought into view (on a phone it sits under the inputs).
SHOW_WAITED = """() => { const waited = (performance.now() - window.fecsimClick) / 1000;
  setTimeout(() => { const el = document.querySelector('#waited');
                     if (el && window.fecsimClick) el.textContent = waited.toFixed(2) + ' s';
                     document.querySelector('#verdict').scrollIntoView({block: 'nearest'}); },
             50); }"""
COUNTDOWN = """async (countdown) => { const show = document.querySelector('#countdown_display');
  for (let i = countdown ? 3 : 0; i > 0; i--) {
    show.textContent = i; await new Promise(r => setTimeout(r, 1000)); }
  show.textContent = ''; return countdown; }"""
PROJECTOR = "() => document.body.classList.toggle('fecsim-projector')"
# On load: projector mode from ?projector, and alt text for every image the page shows (gradio
# leaves it empty): the label of the image's box, or for an example what its file name says.
ON_LOAD = """() => {
  if (new URLSearchParams(location.search).has('projector'))
    document.body.classList.add('fecsim-projector');
  const describe = (img) => {
    const name = decodeURIComponent(img.src.split('/').pop().split('?')[0]);
    const example = name.match(/^([a-z]+)-(.+?)_[0-9]+[.]jpg$/);
    if (example) return 'Example photo: ' + example[2].replace(/_/g, ' ') + ', ' + example[1];
    const caption = img.closest('button, figure')?.querySelector('.caption-label, figcaption');
    if (caption && caption.textContent.trim()) return caption.textContent.trim();
    const label = img.closest('.block')?.querySelector('[data-testid=block-label]');
    return label && label.textContent.trim() ? label.textContent.trim() : 'Photo';
  };
  const fill = () => document.querySelectorAll('img:not([alt]), img[alt=""]')
    .forEach(img => { img.alt = describe(img); });
  new MutationObserver(fill).observe(document.body, {subtree: true, childList: true,
                                                     attributes: true, attributeFilter: ['alt']});
  fill(); }"""


def verdict(details: dict) -> str:
    """The verdict (a mark and a word, in colour), P(same expression) as a bar with the threshold
    marked, and which faces were used."""
    same, p, threshold = details["same"], details["probability"], details["threshold"]
    kind, mark = ("same", "\u2713") if same else ("different", "\u2717")
    return (f'<div class="fecsim-verdict fecsim-{kind}"><span aria-hidden="true">{mark}</span> '
            f'{escape(details["verdict"]).capitalize()}</div>'
            f'<div class="fecsim-probability">P(same expression) = {p:.0%}</div>'
            + bar(p, threshold) +
            f'<div class="fecsim-note">{faces_note(details)} {views_note(details)} '
            f'Model: {details["model_seconds"]:.2f} s; you waited '
            f'<span id="waited">{details["seconds"]:.2f} s</span> (queue included).</div>')


def views_note(details: dict) -> str:
    """How each face was read: its look alone, or its look and its shape (the geometry view)."""
    views = [details.get(f"views_{k}") or ["appearance"] for k in "ab"]
    if views[0] == views[1]:
        both = "look and shape" if "geometry" in views[0] else "look"
        return f"Both faces read by their {both}."
    return ("Face A read by its " + ("look and shape" if "geometry" in views[0] else "look alone")
            + "; B by its " + ("look and shape." if "geometry" in views[1] else "look alone."))


def faces_note(details: dict) -> str:
    """Which face of each photo was used, and how many more were found or too small."""
    notes, more = [], False
    for k in "AB":
        found = len(details.get(f"faces_found_{k.lower()}") or [])
        used = details.get(f"face_{k.lower()}", 1)
        small = details.get(f"too_small_{k.lower()}", 0)
        if used == "box":
            note = f"your box in {k}"
        elif found > 1 and used != 1:
            note = f"face {used} of {found} in {k}"
        else:
            note = f"{found} face{'s' * (found != 1)} in {k}"
            more |= found > 1
        if small:
            note += f" (and {small} too small to use)"
        notes.append(note)
    tip = (" The largest is used: pick another under <em>Choose the face</em>." if more else "")
    return f"Found {notes[0]}; {notes[1]}.{tip}"


def bar(p: float, threshold: float) -> str:
    kind = "same" if p >= threshold else "different"
    return (f'<div class="fecsim-bar" role="meter" aria-valuenow="{p:.4f}" aria-valuemin="0" '
            f'aria-valuemax="1" aria-label="P(same expression)">'
            f'<div class="fecsim-bar-fill fecsim-{kind}" style="width:{p:.1%}"></div>'
            f'<div class="fecsim-bar-threshold" style="left:{threshold:.1%}"></div></div>'
            f'<div class="fecsim-threshold"><span style="left:{threshold:.1%}">threshold '
            f'{threshold:.0%}</span></div>')


def ranking_table(rows: list[dict], threshold: float) -> str:
    """"Who copied it best?" as a table: rank, name, score and reason, unscored photos last."""
    body = "".join(
        f'<tr><td>{row["rank"] or "-"}</td><td>{escape(row["name"])}</td>'
        f'<td class="fecsim-score">{leaderboard.score_text(row)}</td>'
        f'<td class="{_kind(row, threshold)}">{_mark(row, threshold)}'
        f'{escape(leaderboard.reason(row, threshold).split(". ")[0])}</td></tr>' for row in rows)
    return ('<table class="fecsim-ranking"><caption>Score: P(same expression as the reference '
            f'face); from {threshold:.0%} on, "same expression".</caption><thead><tr>'
            '<th class="fecsim-rank">Rank</th><th>Name</th><th class="fecsim-score">Score</th>'
            f'<th>Reason</th></tr></thead><tbody>{body}</tbody></table>')


def _kind(row: dict, threshold: float) -> str:
    if row["probability"] is None:
        return "fecsim-unscored"
    return "fecsim-same" if row["probability"] >= threshold else "fecsim-different"


def _mark(row: dict, threshold: float) -> str:
    mark = {"fecsim-same": "\u2713 ", "fecsim-different": "\u2717 "}.get(_kind(row, threshold), "")
    return f'<span aria-hidden="true">{mark}</span>' if mark else ""


def error(message: str) -> str:
    return (f'<div class="fecsim-error" role="alert"><strong>Cannot compare.</strong> '
            f'{escape(message)}</div>')
