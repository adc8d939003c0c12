"""Shared fixtures. Tests make their own data: a random-weight checkpoint and real faces that ship
with scikit-image. Nothing here reads ../shared."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import socket  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fecsim import checkpoint  # noqa: E402
from fecsim.model import ModelConfig, SiameseResNet18  # noqa: E402

TINY_META = {
    "input_size": 48, "grey": True, "flip_average": True,
    "face": {"margin": 0.0, "square": True, "source_size": 48},
    "calibration": {"scale": 1.0, "bias": 0.0, "threshold": 0.5},
    "data": {"name": "random weights for tests"},
}


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """A checkpoint with random weights: exercises every code path without the shipped model."""
    torch.manual_seed(0)
    model = SiameseResNet18(ModelConfig(num_classes=7, class_names=list("abcdefg")))
    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "random.safetensors", model.eval(),
                           TINY_META)


@pytest.fixture(scope="session")
def astronaut():
    """A real colour photo with one face (public domain, NASA), shipped in scikit-image."""
    from skimage import data
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_jpg(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("faces") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def no_face_jpg(tmp_path_factory):
    """A real photo with no face in it (a coffee cup, from scikit-image)."""
    from skimage import data
    path = tmp_path_factory.mktemp("faces") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path)
    return path


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG")
    return path


def two_faces(astronaut) -> np.ndarray:
    """A photo with two faces side by side, the right one smaller."""
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    canvas = np.full((512, 800, 3), 255, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:384, 530:786] = small
    return canvas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(random_checkpoint, tmp_path_factory):
    """The web app on a free port of 127.0.0.1, with the random checkpoint; yields (url,
    flag_dir). For the slow tier's end-to-end tests (test_app.py, test_browser.py)."""
    from fecsim.web import build_demo, launch
    flag_dir = tmp_path_factory.mktemp("flagged")
    demo = build_demo(random_checkpoint, flag_dir=flag_dir)
    port = free_port()
    launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", flag_dir
    finally:
        demo.close()
