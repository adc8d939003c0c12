"""Which files an API call may name: only photos this app's users uploaded (gradio's upload
cache), its examples and what the app itself wrote (captured frames).

Gradio checks a file only when it arrives as a dict with its FileData `meta`; a bare path, or a
dict without `meta`, reaches the app unchecked, and any image on the server could be read back
through it. So the app checks every file itself: the resolved path (symlinks followed) must lie
under one of the allowed folders. Anything else gets one refusal, the same whether or not the
path exists, so that it tells nothing about the server's files.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ImageError

REFUSED = ("not a photo uploaded to this app: upload it (from a script, gradio_client's "
           "handle_file)")
FILE_DATA = "gradio.FileData"


def upload_folder() -> Path:
    """Gradio's upload cache, as gradio itself finds it (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder
    return Path(get_upload_folder())


class Uploads:
    """The folders a file an API call names must come from."""

    def __init__(self, *folders):
        self.folders = [Path(os.path.realpath(f)) for f in folders if f]

    def path(self, value, label: str) -> str | None:
        """The file's path when `value` (gradio's file dict, or a path) names a file under one of
        the folders; None when no file was given; ImageError(label) otherwise."""
        if value is None or value == "":
            return None
        if isinstance(value, dict):
            meta = value.get("meta")
            if not (isinstance(meta, dict) and meta.get("_type") == FILE_DATA):
                raise ImageError(source=label, reason=REFUSED)
            value = value.get("path")
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ImageError(source=label, reason=REFUSED)
        try:
            real = Path(os.path.realpath(value))
        except (OSError, ValueError):   # a NUL byte, a loop of links
            raise ImageError(source=label, reason=REFUSED) from None
        if not any(real.is_relative_to(folder) for folder in self.folders):
            raise ImageError(source=label, reason=REFUSED)
        return str(value)
