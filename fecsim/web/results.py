"""The page's files: result images written once and swept when old, faces drawn with their boxes,
and new files (camera captures, the ranking's CSV)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

from ..files import write_atomic
from ..retention import Sweeper
from ..uploads import upload_folder

OUTPUTS = Path(tempfile.gettempdir()) / "fecsim-app"  # result images, named by content
RESULT_MAX_AGE = 3600  # seconds a result image (ours, and gradio's cached copy) is kept:
# a public app's disk must not fill up with users' photos


class ResultStore:
    """Result images in one folder, named by content; those older than max_age are deleted, in
    sub-folders too (captures), and so is what an earlier run left in gradio's upload cache
    (`cache`): at start-up and then every max_age / 6 (retention.py)."""

    def __init__(self, folder: Path = OUTPUTS, max_age: float = RESULT_MAX_AGE, cache=None):
        self.folder, self.max_age = Path(folder), max_age
        started = time.time()
        self.sweepers = [Sweeper([self.folder], max_age, max_age / 6),
                         Sweeper([cache or upload_folder()], max_age, max_age / 6,
                                 changed_before=started)]

    def saved(self, image: Image.Image, format: str = "png") -> str:
        """The image as a file named by its content, written atomically (temporary name + rename).

        Handing gradio a PIL image makes it write <cache>/<hash>/image.png in place, truncating the
        file while another client may be downloading the identical result (the same example
        clicked by a whole classroom): that client gets a cut-off body. A finished file is copied
        atomically.
        """
        data = io.BytesIO()
        image.save(data, format=format)
        data = data.getvalue()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:32]}.{format}"
        if path.exists():
            os.utime(path)  # in use again: not to be swept as old
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        self.sweep()
        return str(path)

    def new_path(self, name: str) -> Path:
        """A new file of this name (a capture, a CSV) in a folder of its own: the name is what
        the page's lists and downloads show."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="file-", dir=self.folder)) / name

    def keep_sweeping(self) -> None:
        """Sweep every max_age / 6 in a background thread: an idle app keeps its promise too."""
        def loop():
            while True:
                time.sleep(self.max_age / 6)
                self.sweep()
        threading.Thread(target=loop, daemon=True, name="fecsim-sweep").start()

    def sweep(self, at_once: bool = False) -> int:
        """Delete what is older than max_age; unless at_once, at most every max_age / 6.
        Returns how many files went."""
        return sum(s.now() if at_once else s.maybe() for s in self.sweepers)


def draw_boxes(image: Image.Image, box, found) -> Image.Image:
    """The photo with every detected face numbered (1 = largest) and the one used in green."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 200))
    font_size = max(14, round(max(image.size) / 20))  # readable whatever the photo's size
    for i, other in enumerate(found or [], start=1):
        draw.rectangle(other, outline=(255, 170, 0), width=max(1, width // 2))
        draw.text((other[0] + width, other[1] + width), str(i), fill=(255, 170, 0),
                  font_size=font_size, stroke_width=max(1, font_size // 12), stroke_fill=(0, 0, 0))
    draw.rectangle(box, outline=(0, 220, 0), width=width)
    return image
