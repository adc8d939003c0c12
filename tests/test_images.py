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
    (9500, "9500x9500 pixels is over the limit of 80 megapixels: send a smaller"),  # PIL warns
    (20000, "over 179 megapixels, far over the limit of 80 megapixels"),  # PIL refuses to open
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


# --- Reliability (README): only the formats we accept, and a memory bound before decoding. ---

@pytest.mark.parametrize("fmt, kwargs", [
    ("JPEG", {}), ("PNG", {}), ("WEBP", {}), ("BMP", {}), ("GIF", {}), ("TIFF", {}),
    ("MPO", {"save_all": True}),
])
def test_accepted_formats_decode(tmp_path, astronaut, fmt, kwargs):
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(astronaut).save(path, fmt, **kwargs)
    assert load_image(path).size == (512, 512)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(path))[8, 8, 0] > 200


@pytest.mark.parametrize("fmt", ["EPS", "PCX", "ICO", "PPM"])
def test_other_formats_are_refused_before_parsing(tmp_path, astronaut, fmt):
    path = tmp_path / f"upload.{fmt.lower()}"
    Image.fromarray(astronaut[:64, :64]).save(path, fmt)
    with pytest.raises(ImageError, match=rf"upload\.{fmt.lower()}: unsupported image format {fmt}"):
        load_image(path)


def test_eps_never_runs_ghostscript(tmp_path, monkeypatch):
    path = tmp_path / "upload.eps"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    ran = []
    monkeypatch.setattr("subprocess.check_call", lambda *a, **k: ran.append(a))
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: ran.append(a))
    with pytest.raises(ImageError, match="unsupported image format EPS"):
        load_image(path)
    assert not ran


def test_decoded_size_is_bounded_by_bytes_not_only_pixels(tmp_path):
    # 67 megapixels: under the pixel limit, but 4 bytes a pixel decoded is over the byte limit.
    path = tmp_path / "wide.png"
    Image.new("RGBA", (8200, 8200), (1, 2, 3, 255)).save(path, optimize=True)
    with pytest.raises(ImageError, match=r"wide\.png: 8200x8200 RGBA .* over the limit"):
        load_image(path)


PEAK = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from fecsim.images import load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = load_image(sys.argv[1])
print(image.size, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.slow
def test_a_sixteen_bit_photo_under_the_limits_decodes_in_bounded_memory(tmp_path):
    # 175 KB on disk, 79 megapixels of 16-bit grey: once peaked at 1.4 GB above the baseline.
    import subprocess
    import sys
    from pathlib import Path
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8900, 8900), 40000, np.uint16)).save(path)
    out = subprocess.run([sys.executable, "-c", PEAK, str(path),
                          str(Path(__file__).resolve().parent.parent)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    size, peak_mb = out.stdout.rsplit(")", 1)
    assert size == "(8900, 8900" and float(peak_mb) < 800, out.stdout   # MB above the baseline
