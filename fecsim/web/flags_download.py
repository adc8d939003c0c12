"""For the person running the app: every flag as one zip, behind a token. API: /download_flags."""

from __future__ import annotations

import hmac
import os
import tempfile
from pathlib import Path

import gradio as gr

from ..flags import zip_flags
from .context import AppContext, bind

FLAGS_TOKEN_VARIABLE = "FECSIM_FLAGS_TOKEN"  # who may download every flag


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


def download(ctx: AppContext, token):
    """All flags as one zip; needs the server's FECSIM_FLAGS_TOKEN."""
    return download_flags(token, ctx.flag_dir)  # this page's own folder


def build(ctx: AppContext):
    with gr.Accordion("For the person running this app: download the flags", open=False):
        gr.Markdown(f"All flags as one zip (what `python -m fecsim export-flags` reads). "
                    f"Needs the token set in `{FLAGS_TOKEN_VARIABLE}` on the server.")
        with gr.Row():
            token = gr.Textbox(label="Token", type="password", elem_id="token")
            button = gr.Button("Download all flags", elem_id="download_flags")
        flags_zip = gr.File(label="Flags", elem_id="flags_zip")
    button.click(bind(download, ctx), token, flags_zip, api_name="download_flags")
