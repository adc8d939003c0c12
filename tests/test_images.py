"""Bad input: a clear error naming the file and the reason; every mode comes out as RGB."""
import io

import numpy as np
import pytest
from PIL import Image

from fecsim.errors import ImageError
from fecsim.images import load_image


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")


def test_not_an_image(not_an_image):
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image file"):
        load_image(not_an_image)


def test_truncated_jpeg(tmp_path, astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated or corrupt"):
        load_image(path)


def test_encoded_bytes_decode_like_a_file(tmp_path, astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "PNG")
    data = buf.getvalue()
    path = tmp_path / "a.png"
    path.write_bytes(data)
    assert np.array_equal(np.asarray(load_image(data)), np.asarray(load_image(path)))
    with pytest.raises(ImageError, match=r"<9 bytes>: not an image file"):
        load_image(b"not a jpg")
    with pytest.raises(ImageError, match=r"bytes>: truncated or corrupt"):
        load_image(data[: len(data) // 2])
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG", optimize=True)
    with pytest.raises(ImageError, match="9000x9000 pixels is over the limit"):
        load_image(bomb.getvalue())


@pytest.mark.parametrize("side, reason", [
    (9000, "9000x9000 pixels is over the limit"),        # over ours, under PIL's own bomb limit
    (20000, "refused as a possible decompression bomb"),  # PIL refuses it while opening
])
def test_decompression_bomb_refused_before_decoding(tmp_path, side, reason):
    # A PNG of one colour is tiny on disk but hundreds of megapixels once decoded.
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path, optimize=True)
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=rf"bomb\.png: {reason}"):
        load_image(path)


def test_oversized_in_memory_image_refused():
    with pytest.raises(ImageError, match="over the limit"):
        load_image(Image.new("L", (200, 200)), max_pixels=10_000)


def test_exif_rotation_is_honoured(tmp_path):
    # Stored landscape 40x20 with EXIF orientation 6 (rotate 90° clockwise to view): upright 20x40.
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the stored left edge -> top once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    upright = load_image(path)
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[2, 10], np.asarray(upright)[37, 10]
    assert top[2] > 200 and top[0] < 60      # blue now on top
    assert bottom[0] > 200 and bottom[2] < 60


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode, astronaut):
    image = Image.fromarray(astronaut).convert("L" if mode in ("I;16", "I", "F") else "RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image).astype(np.uint16) * 257))
        assert image.mode == "I;16"
    else:
        image = image.convert(mode)
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (512, 512)
    assert 30 < np.asarray(out).mean() < 225   # not flattened to black or white


def test_sixteen_bit_png_file(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)).save(path)
    out = np.asarray(load_image(path))
    assert out.shape == (64, 64, 3) and out.min() == 0 and out.max() == 255


def test_transparent_png_goes_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert (np.asarray(load_image(path)) == 255).all()


@pytest.mark.parametrize("array", [
    np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 4), np.uint8),
    np.zeros((10, 10, 1), np.uint8), np.random.default_rng(0).random((10, 10, 3))])
def test_arrays(array):
    assert load_image(array).size == (10, 10)


def test_bad_array_shape():
    with pytest.raises(ImageError, match="expected HxW"):
        load_image(np.zeros((10, 10, 5), np.uint8))


def test_unsupported_type():
    with pytest.raises(ImageError, match="expected a file path"):
        load_image(42)
