"""What every tab of the page shares: the one model, where flags go, the result files, the errors
waiting for their page, which files a call may name, the live mirrors' room, and the GPU hook.
One AppContext per page replaces module globals.

The model is loaded on the CPU. On a GPU machine (a Hugging Face ZeroGPU Space among them) it is
moved to CUDA only inside the functions decorated with spaces.GPU, which is where ZeroGPU allows
CUDA to be initialised; without the `spaces` package the decorator does nothing.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import torch

from ..flags import PairFlagLogger
from ..inference import ExpressionComparer
from ..live_room import LiveRoom
from ..shipped_examples import ROOT as EXAMPLES
from ..tokens import TokenGate
from ..uploads import Uploads, upload_folder
from .results import ResultStore

try:  # Hugging Face Spaces: runs the decorated function with a GPU attached.
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(fn):
        return fn


MAX_KEPT_ERRORS = 1000  # errors waiting for their page to show them


class ErrorStore:
    """Each session's last error, until its page has shown it."""

    def __init__(self, limit: int = MAX_KEPT_ERRORS):
        self.limit, self.messages = limit, {}

    def keep(self, session: str, message: str):
        self.messages[session] = message
        while len(self.messages) > self.limit:  # API clients never collect theirs
            self.messages.pop(next(iter(self.messages)))

    def pop(self, session: str) -> str | None:
        return self.messages.pop(session, None)


_ids = itertools.count()
_contexts: dict[int, AppContext] = {}  # by id: what the GPU functions run with


@dataclass
class AppContext:
    comparer: ExpressionComparer  # the one model, shared by every session
    flag_dir: Path
    results: ResultStore = field(default_factory=ResultStore)
    errors: ErrorStore = field(default_factory=ErrorStore)
    uploads: Uploads | None = None   # None: gradio's upload cache, the examples, our results
    flags_token: TokenGate = field(default_factory=TokenGate)
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self):
        self.flag_dir = Path(self.flag_dir)
        self.logger = PairFlagLogger(self.flag_dir)
        if self.uploads is None:
            self.uploads = Uploads(upload_folder(), EXAMPLES, self.results.folder)
        self.results.sweep(at_once=True)   # what a crash or an earlier run left
        self.live = LiveRoom(self.comparer)  # every page's live mirror
        _contexts[self.id] = self

    # The model's calls, each inside the GPU hook. They take the context's id, not the context:
    # ZeroGPU hands a decorated function's arguments to another process.
    def compare(self, a, b, box_a, box_b):
        return _compare_on_device(self.id, a, b, box_a, box_b)

    def odd_one_out(self, a, b, c, boxes):
        return _odd_one_out_on_device(self.id, a, b, c, boxes)

    def rank(self, reference, photos):
        return _rank_on_device(self.id, reference, photos)


def _ready(context_id: int) -> ExpressionComparer:
    # Only here may CUDA be touched: inside the spaces.GPU-decorated call.
    comparer = _contexts[context_id].comparer
    if torch.cuda.is_available() and comparer.device.type != "cuda":
        comparer.to("cuda")
    return comparer


@gpu
def _compare_on_device(context_id, a, b, box_a, box_b):
    return _ready(context_id).compare(a, b, box_a=box_a, box_b=box_b)


@gpu
def _odd_one_out_on_device(context_id, a, b, c, boxes):
    return _ready(context_id).odd_one_out(a, b, c, boxes=boxes)


@gpu
def _rank_on_device(context_id, reference, photos):
    return _ready(context_id).rank(reference, photos)


def bind(handler, ctx: AppContext):
    """The handler with ctx as its first argument, as gradio should see it: gradio reads the
    signature and type hints to pass gr.Request, which functools.partial would hide."""

    @functools.wraps(handler)
    def bound(*args, **kwargs):
        return handler(ctx, *args, **kwargs)

    signature = inspect.signature(handler)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound


def kept_for_the_page(handler):
    """An error still reaches the caller as gr.Error (an API client gets AppError), and is kept
    for the session so that the page shows it in its result area too: the toast vanishes."""

    @functools.wraps(handler)
    def wrapper(ctx: AppContext, *args, **kwargs):
        try:
            return handler(ctx, *args, **kwargs)
        except gr.Error as exc:
            request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
            if request is not None and request.session_hash:   # as written: the page escapes it
                ctx.errors.keep(request.session_hash, getattr(exc, "text", exc.message))
            raise

    return wrapper
