"""For the person running the app: every flag as one zip, behind a token. API: /download_flags.

The zip is written straight into gradio's upload cache, which serves it from there: no other
copy is left in the temporary folder. It is deleted ZIP_MAX_AGE after it was made (time enough
to download it); after a crash, by the app's start-up sweep. Wrong tokens slow down guessing
(tokens.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import gradio as gr

from ..flags import zip_flags
from ..text import MAX_TEXT_INPUT
from ..tokens import TokenGate, TokenRefused
from ..uploads import upload_folder
from . import parts
from .context import AppContext, bind

FLAGS_TOKEN_VARIABLE = "FECSIM_FLAGS_TOKEN"  # who may download every flag
ZIP_PREFIX = "fecsim-flags-"
ZIP_MAX_AGE = 600  # seconds a flags zip is kept for its download


def download_flags(token: str, flag_dir, gate: TokenGate, cache=None) -> str:
    """All flags as one zip (the folders `python -m fecsim export-flags` reads), in gradio's
    cache (or `cache`). Needs the token set in the FECSIM_FLAGS_TOKEN environment variable;
    refused when it is unset or wrong, and for a while after a wrong one."""
    expected = os.environ.get(FLAGS_TOKEN_VARIABLE, "")
    if not expected:
        raise parts.page_error(f"Downloading flags is switched off: {FLAGS_TOKEN_VARIABLE} is "
                               "not set on the server.", title="Refused")
    try:
        gate.check(token, expected)
    except TokenRefused as exc:
        raise parts.page_error(str(exc), title="Refused") from None
    cache = Path(cache or upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=ZIP_PREFIX, dir=cache))
    zip_flags(flag_dir, folder / "flagged.zip")
    # Served from here by gradio; gone once it had time to be downloaded.
    remover = threading.Timer(ZIP_MAX_AGE, shutil.rmtree, (folder,), {"ignore_errors": True})
    remover.daemon = True
    remover.start()
    return str(folder / "flagged.zip")


def download(ctx: AppContext, token):
    """All flags as one zip; needs the server's FECSIM_FLAGS_TOKEN."""
    return download_flags(token, ctx.flag_dir, ctx.flags_token)  # this page's own folder


def build(ctx: AppContext):
    with gr.Accordion("For the person running this app: download the flags", open=False):
        gr.Markdown(f"All flags as one zip (what `python -m fecsim export-flags` reads). "
                    f"Needs the token set in `{FLAGS_TOKEN_VARIABLE}` on the server.")
        with gr.Row():
            token = gr.Textbox(label="Token", type="password", elem_id="token",
                               max_length=MAX_TEXT_INPUT)
            button = gr.Button("Download all flags", elem_id="download_flags")
        flags_zip = gr.File(label="Flags", elem_id="flags_zip")
    button.click(bind(download, ctx), token, flags_zip, api_name="download_flags")
