"""The page's files: result images written once and swept when old, faces drawn with their boxes,
camera captures, and the example photos."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from ..files import shipped, write_atomic

EXAMPLES = shipped("examples")
OUTPUTS = Path(tempfile.gettempdir()) / "fecsim-app"  # result images, named by content
RESULT_MAX_AGE = 3600  # seconds a result image (ours, and gradio's cached copy) is kept:
# a public app's disk must not fill up with users' photos


class ResultStore:
    """Result images in one folder, named by content; those older than max_age are deleted."""

    def __init__(self, folder: Path = OUTPUTS, max_age: float = RESULT_MAX_AGE):
        self.folder, self.max_age = Path(folder), max_age
        self.last_sweep = 0.0

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

    def capture_path(self, number: int) -> Path:
        """A new file for a camera capture (its own folder: the name shows in the photo list)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="capture-", dir=self.folder)) / f"capture-{number}.jpg"

    def sweep(self):
        """Delete result images older than max_age; looks at most every max_age / 6."""
        now = time.time()
        if now - self.last_sweep < self.max_age / 6:
            return
        self.last_sweep = now
        for old in self.folder.iterdir():
            try:
                if now - old.stat().st_mtime > self.max_age:
                    old.unlink()
            except OSError:
                pass  # removed meanwhile by another request


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


def example_files(kind: str) -> list[list[str]]:
    """examples/<kind>/<name>/*.jpg, each folder one example, files in name order."""
    root = EXAMPLES / kind
    if not root.is_dir():
        return []
    return [[str(p) for p in sorted(folder.glob("*.jpg"))]
            for folder in sorted(root.iterdir()) if folder.is_dir()]


def distinct_photos(examples: list[list[str]]) -> list[list[str]]:
    """Each distinct photo of the examples once (several examples share a photo)."""
    by_content = {}
    for path in (p for example in examples for p in example):
        by_content.setdefault(hashlib.sha256(Path(path).read_bytes()).digest(), path)
    return [[p] for p in by_content.values()]
