"""The live mirror's face search: near the last box first, in the whole frame when lost."""
import numpy as np
import pytest
from PIL import Image

from fecsim import ExpressionComparer
from fecsim.live import find_face


@pytest.fixture(scope="module")
def comparer(random_checkpoint):
    return ExpressionComparer.load(random_checkpoint, device="cpu")


def framed(astronaut, x: int) -> Image.Image:
    """The astronaut, at half size, at x in a webcam-sized grey frame."""
    frame = Image.new("RGB", (640, 480), (90, 90, 90))
    frame.paste(Image.fromarray(astronaut).resize((256, 256)), (x, 112))
    return frame


def test_a_face_found_near_the_last_box_is_in_the_frame_coordinates(comparer, astronaut):
    whole_box, whole_eyes = find_face(comparer, framed(astronaut, 300))
    near_box, near_eyes = find_face(comparer, framed(astronaut, 300), near=whole_box)
    assert np.allclose(near_box, whole_box, atol=12) and np.allclose(near_eyes, whole_eyes, atol=12)
    moved_box, _ = find_face(comparer, framed(astronaut, 330), near=whole_box)
    assert moved_box[0] == pytest.approx(whole_box[0] + 30, abs=12)


def test_a_lost_face_is_searched_for_in_the_whole_frame(comparer, astronaut):
    box, _ = find_face(comparer, framed(astronaut, 20), near=(500, 300, 600, 400))
    assert box[0] < 300

