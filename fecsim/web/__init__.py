"""The web app: a Gradio Blocks page over ExpressionComparer, one module per tab.

compare (two photos; /compare, /flag), odd_one_out (three photos; /odd_one_out), live_mirror
(the webcam against a reference face), ranking ("who copied it best?"; /rank) and flags_download
(/download_flags, token-guarded); api_help shows how to call the app from Python. They share an
AppContext (context.py): the model, the flag folder, the result files and the errors. html.py
holds how results look, with all CSS and JS.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import checkpoint, shipped_examples
from ..flags import default_flag_dir
from ..inference import ExpressionComparer
from . import (api_help, compare, flags_download, html, live_html, live_mirror, odd_one_out,
               ranking)
from .context import AppContext
from .parts import CAMERA_NOTE, MAX_UPLOAD_MB
from .results import RESULT_MAX_AGE

MAX_FILE_SIZE = f"{MAX_UPLOAD_MB}mb"  # uploads beyond this are refused by gradio before they reach us
CONCURRENCY = 1  # one model call at a time: a GPU or 2 CPU cores gain nothing more
QUEUE_SIZE = 256  # waiting requests beyond this are told the queue is full


def build_demo(checkpoint_path=None, flag_dir=None, comparer=None,
               concurrency: int = CONCURRENCY) -> gr.Blocks:
    """The whole page. checkpoint_path None means the shipped model; flag_dir None means
    /data/flagged on persistent storage, else flagged/."""
    # Loaded on the CPU: CUDA is only touched inside the spaces.GPU functions.
    comparer = comparer or ExpressionComparer.load(checkpoint_path or checkpoint.SHIPPED,
                                                   device="cpu")
    ctx = AppContext(comparer, Path(flag_dir) if flag_dir is not None else default_flag_dir())
    ctx.results.keep_sweeping()   # users' photos gone within the hour, used or idle
    with gr.Blocks(title="fecsim: same facial expression?",
                   delete_cache=(RESULT_MAX_AGE // 6, RESULT_MAX_AGE)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("# Do these two faces show the same facial expression?")
            projector = gr.Button("Projector: large type", elem_id="projector", size="sm",
                                  scale=0, min_width=200)
        gr.Markdown("Upload two photos or capture them with the camera, then press **Compare**. "
                    "The model sees only the face crops shown with the result. " + CAMERA_NOTE,
                    elem_classes=["fecsim-intro"])
        projector.click(None, js=html.PROJECTOR)
        # On a phone the tabs wrap onto a second line rather than hide behind a "..." menu.
        with gr.Tabs(overflow_behavior="wrap"):
            for tab in (compare, odd_one_out, live_mirror, ranking):
                tab.build(ctx)
        flags_download.build(ctx)
        api_help.build(ctx, demo)
        gr.Markdown(f"Model: `{comparer.path.name}` (sha256 `{comparer.sha256[:12]}`). "
                    "Probabilities are calibrated on held-out pairs; a verdict is the "
                    "probability against the checkpoint's threshold.")
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks, host="127.0.0.1", port=7860, share=False, **kwargs):
    # The example photos are served (the examples and the API snippet use them); gradio's own
    # "Use via API" page is left out of the footer for api_help's working snippet. No run
    # history: gradio would keep every run's photos in the browser (a shared classroom computer)
    # and offer to save them to an outside service, where the page promises nothing is kept.
    return demo.launch(server_name=host, server_port=port, share=share,
                       css=html.CSS + live_html.CSS, js=html.ON_LOAD,
                       max_file_size=MAX_FILE_SIZE, ssr_mode=False,
                       allowed_paths=[str(shipped_examples.ROOT)],
                       footer_links=["gradio", "settings"], run_history=False, **kwargs)
