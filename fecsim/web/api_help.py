"""How to call the app from a program: a snippet that runs as shown, on this page's own example
photos, in place of gradio's generated "Use via API" page (hidden: its snippets send a photo with
no face and a box of "Hello!!", and its JavaScript declares one name twice)."""

from __future__ import annotations

import gradio as gr

from .. import shipped_examples
from .context import AppContext

PAGE = "PAGE_ADDRESS/"   # replaced in the browser by the address the page was opened at
SNIPPET = """from urllib.request import urlretrieve
from gradio_client import Client, handle_file   # pip install gradio_client

page = "{page}"
client = Client(page)
# Two example photos from this page (or photos of your own: a, b = "a.jpg", "b.jpg")
a, _ = urlretrieve(page + "gradio_api/file={a}")
b, _ = urlretrieve(page + "gradio_api/file={b}")
boxed_a, boxed_b, crop_a, crop_b, top3_a, top3_b, details = client.predict(
    handle_file(a), handle_file(b), api_name="/compare")
print(details["verdict"], details["probability"])
gallery, ranking = client.predict(handle_file(a), [handle_file(b)], api_name="/rank")
print(ranking)   # best first: rank, name, probability, error"""
FILL_ADDRESS = (f"(snippet) => snippet.replaceAll('{PAGE}', "
                "location.origin + location.pathname.replace(/[^/]*$/, ''))")


def snippet() -> str:
    a, b = shipped_examples.pairs()[0].photos
    return SNIPPET.format(page=PAGE, a=a, b=b)


def build(ctx: AppContext, demo: gr.Blocks):
    with gr.Accordion("Use it from a program (API)", open=False, elem_id="api_help"):
        gr.Markdown("The endpoints `/compare`, `/odd_one_out`, `/rank` and `/flag` answer "
                    "`gradio_client` in Python; this runs as it is (on two example photos). "
                    "The README lists every endpoint and what it returns.")
        code = gr.Code(snippet(), language="python", interactive=False, elem_id="api_snippet")
    demo.load(None, code, code, js=FILL_ADDRESS)
