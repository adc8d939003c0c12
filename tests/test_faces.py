"""Faces: MTCNN on a real photo, given boxes in pixels or FEC fractions, several faces, no face."""
import numpy as np
import pytest
from PIL import Image

from conftest import two_faces
from fecsim.errors import BoxError, NoFaceError
from fecsim.faces import FaceCropper, check_box, fec_box_to_pixels, parse_face_number
from fecsim.view import Framing, View


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper(View(input_size=48, grey=True, face=Framing(margin=0.0, source_size=48)))


def test_mtcnn_finds_the_astronauts_face(cropper, astronaut_jpg):
    face = cropper(astronaut_jpg)
    x0, y0, x1, y1 = face.box
    # Her face sits around x 180-270, y 60-175 in the 512x512 photo.
    assert 160 < x0 < 200 and 250 < x1 < 290 and 40 < y0 < 90 and 150 < y1 < 200
    assert face.crop.size == (48, 48) and face.crop.mode == "RGB"
    crop = np.asarray(face.crop)
    assert (crop[..., 0] == crop[..., 1]).all()   # grey, as FER2013's training faces
    assert face.others == 0


def test_no_face_is_an_error_not_a_guess(cropper, no_face_jpg):
    with pytest.raises(NoFaceError, match=r"coffee\.jpg: no face found"):
        cropper(no_face_jpg)


def test_largest_of_several_faces_is_used_and_others_reported(cropper, astronaut):
    face = cropper(two_faces(astronaut))
    assert face.others == 1 and len(face.found) == 2
    assert face.box[2] < 400                      # the big face on the left
    assert face.found[1][0] > 512                 # the small one on the right is listed second
    other = cropper(two_faces(astronaut), box=face.found[1])  # a caller can pick it instead
    assert other.box[0] > 512


def test_a_finer_search_finds_the_faces_too_small_to_use(cropper, astronaut):
    # A group photo: one face large enough, one under 8 % of the photo's width (the back row).
    canvas = Image.new("RGB", (1000, 520), (230, 230, 230))
    canvas.paste(Image.fromarray(astronaut), (0, 4))
    canvas.paste(Image.fromarray(astronaut).resize((160, 160)), (700, 150))
    assert len(cropper.detect(canvas)) == 1
    finer = cropper.detect(canvas, finer=True)
    assert len(finer) == 2 and finer[1][0] > 700


def test_pixel_box_skips_detection(cropper, astronaut):
    face = cropper(astronaut, box=(180, 60, 268, 172))
    assert face.box == (180.0, 60.0, 268.0, 172.0) and face.found == []


def test_fec_box_order():
    # FEC: (x0/w, x1/w, y0/h, y1/h)
    assert fec_box_to_pixels((0.1, 0.5, 0.2, 0.8), 200, 100) == pytest.approx((20, 20, 100, 80))


def test_fec_box_gives_the_same_crop_as_pixels(cropper, astronaut):
    by_pixels = cropper(astronaut, box=(180, 60, 268, 172))
    by_fraction = cropper(astronaut, fec_box=(180 / 512, 268 / 512, 60 / 512, 172 / 512))
    assert np.array_equal(np.asarray(by_pixels.crop), np.asarray(by_fraction.crop))


@pytest.mark.parametrize("box, message", [
    ((600, 600, 700, 700), "outside the 512x512 image"),
    ((100, 100, 50, 200), "x1 > x0"),
    ((1, 2, 3), "four numbers"),
    (("a", 1, 2, 3), "four numbers"),
    ((0, 0, float("nan"), 10), "non-finite"),
])
def test_bad_boxes(cropper, astronaut, box, message):
    with pytest.raises(BoxError, match=message):
        cropper(astronaut, box=box)


def test_box_is_clipped_to_the_image():
    assert check_box((-10, -5, 50, 600), 100, 512) == (0.0, 0.0, 50.0, 512.0)


def test_assume_cropped_uses_the_whole_image(cropper):
    image = Image.fromarray(np.full((30, 30, 3), 128, np.uint8))
    face = cropper(image, assume_cropped=True)
    assert face.box == (0.0, 0.0, 30.0, 30.0) and face.crop.size == (48, 48)


def test_large_photo_is_detected_on_a_smaller_copy(cropper, astronaut):
    big = Image.fromarray(astronaut).resize((2048, 2048))
    x0, y0, x1, y1 = cropper(big).box
    assert 640 < x0 < 800 and 1000 < x1 < 1160   # boxes come back in the original's pixels


def test_channels_last_detector_finds_the_same_boxes_as_stock_mtcnn(cropper, astronaut):
    from facenet_pytorch import MTCNN
    photo = Image.fromarray(two_faces(astronaut))
    ours = cropper.detect(photo)
    # Both on the same downscaled copy that detect() searches; its boxes are in the photo's pixels.
    from fecsim.faces import DETECT_MAX_SIDE, min_face_size
    scale = min(1.0, DETECT_MAX_SIDE / max(photo.size))
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BILINEAR)
    stock = MTCNN(keep_all=True, min_face_size=min_face_size(small.size))
    boxes, probs = stock.detect(small)
    expected = sorted((tuple(float(v) / scale for v in b) for b, p in zip(boxes, probs) if p >= 0.9),
                      key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    assert len(ours) == len(expected) == 2
    assert np.allclose([f[:4] for f in ours], expected, atol=0.01)


# --- Reliability (README): small or elongated photos, boxes mostly outside the photo. ---

@pytest.mark.parametrize("size", [(1, 1), (19, 400), (1000, 79), (30000, 12)])
def test_tiny_or_thin_photos_are_a_clear_no_face(cropper, size):
    with pytest.raises(NoFaceError, match=r"<PIL image .*>: (no face found|.*too small)"):
        cropper(Image.new("RGB", size, (120, 110, 100)))


def test_a_face_in_a_panorama_is_found(cropper, astronaut):
    # Her head, 2x, in a 4000x300 strip: the face is about 230 px, the photo 13 times wider.
    head = Image.fromarray(astronaut).crop((150, 30, 300, 180)).resize((300, 300))
    panorama = Image.new("RGB", (4000, 300), (200, 200, 200))
    panorama.paste(head, (2500, 0))
    x0, y0, x1, y1 = cropper(panorama).box
    assert 2500 < x0 < x1 < 2800 and x1 - x0 > 150


def test_a_box_mostly_outside_the_photo_is_an_error(cropper):
    with pytest.raises(BoxError, match="mostly outside the 1200x900 image"):
        check_box((0, 0, 5000, 5000), 1200, 900)


@pytest.mark.parametrize("value", [float("inf"), "1e400", 0, -5, 1.7, "two", float("nan")])
def test_a_face_number_is_a_whole_number_from_one(value):
    with pytest.raises(BoxError, match=r"Image A: the face number must be a whole number >= 1"):
        parse_face_number(value, "Image A")


@pytest.mark.parametrize("value, number", [(1, 1), (2.0, 2), ("3", 3), (None, 1), ("", 1)])
def test_face_numbers_accepted(value, number):
    assert parse_face_number(value, "Image A") == number


def test_alignment_levels_the_eyes_of_a_tilted_face(astronaut):
    """A photo turned by 20 degrees: with align on, its crop is the upright photo's aligned crop
    again (near enough); without, it stays turned. MTCNN's eye landmarks come with each detection."""
    from fecsim.faces import FaceCropper
    photo = Image.fromarray(astronaut)
    tilted = photo.rotate(20, resample=Image.BILINEAR)
    found = FaceCropper().detect(tilted)[0]
    left_x, left_y, right_x, right_y = found.eyes
    assert left_x < right_x and left_y > right_y + 5   # turned counter-clockwise: left eye lower

    def crop(image, align):
        face = FaceCropper(View(96, True, face=Framing(-0.04, True, None, align)))(image)
        return np.asarray(face.crop, dtype=np.float32)

    # Aligned, the two photos give nearly the same crop; not aligned, they differ by the turn.
    aligned_gap = np.abs(crop(tilted, True) - crop(photo, True)).mean()
    plain_gap = np.abs(crop(tilted, False) - crop(photo, False)).mean()
    assert aligned_gap < 0.5 * plain_gap
