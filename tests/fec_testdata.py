"""Helpers for the FEC tests: rows in FEC's exact format, and a crop cache like the downloader's."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from fecsim.train.fec.download import SETTINGS, crop_path
from fecsim.train.fec.reader import FaceRef


def row(faces, kind, answers, raters=None) -> str:
    """One CSV line as FEC writes it: quoted URLs, the box in FEC's order, type, rater pairs."""
    cells = []
    for url, box in faces:
        cells.append(f'"{url}"')
        cells += [f"{v:g}" for v in box]
    cells.append(kind)
    raters = raters or [f"rater{i}" for i in range(len(answers))]
    for rater, answer in zip(raters, answers):
        cells += [rater, str(answer)]
    return ",".join(cells)


def write_csv(path, lines) -> Path:
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def make_cache(root, faces, size=32, seed=0, colours=None) -> Path:
    """Crops for the given FaceRefs, as the downloader stores them; colours[i] fills face i."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / SETTINGS).write_text(json.dumps({"size": size, "margin": 0.1, "square": True}))
    rng = np.random.default_rng(seed)
    for i, face in enumerate(faces):
        if colours is not None:
            pixels = np.full((size, size, 3), colours[i], np.uint8)
        else:
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = crop_path(root, face)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=95)
    return root


def face(i: int) -> FaceRef:
    return FaceRef(f"http://example.invalid/photo{i}.jpg", (0.1, 0.9, 0.1, 0.9))
