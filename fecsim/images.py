"""Safe image loading: paths, encoded bytes, PIL images or numpy arrays -> an upright RGB PIL image."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

from .errors import ImageError

# Larger than nearly any camera photo (a 50 MP phone shot is 5e7 px); refuse beyond it before decoding,
# so a decompression bomb costs a header read, not gigabytes.
MAX_PIXELS = 80_000_000
# Decoded bytes (pixels x bands x bytes per sample, from the header's mode), refused beyond this
# before decoding: an 80 MP RGB photo is 240 MB, while a 16-bit or RGBA file needs more per pixel.
MAX_DECODED_BYTES = 256_000_000
SMALLER_COPY = "send a smaller copy of the photo (phones can share one at a smaller size)"
# The only formats PIL may parse, by its plugin names; the file extension each is stored under.
# Every other plugin stays untried: an .eps upload, say, would make PIL run Ghostscript.
FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
           "GIF": ".gif", "TIFF": ".tif"}


def describe(source) -> str:
    """A short name for error messages: the path, or the kind of in-memory object."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.size[0]}x{source.size[1]} {source.mode}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def load_image(source, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Return `source` as an RGB image with its EXIF rotation applied.

    Raises ImageError (naming the source) for missing, non-image, truncated or oversized inputs.
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        image = _from_array(source, name)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise ImageError(source=name, reason=f"no such file")
        with open(source, "rb") as file:
            image = _open(file, name, max_pixels)
    elif isinstance(source, (bytes, bytearray)):   # an encoded file, e.g. a download
        image = _open(io.BytesIO(source), name, max_pixels)
    else:
        raise ImageError(source=name, reason=f"expected a file path, encoded bytes, PIL image or numpy array")
    _check_size(image, name, max_pixels)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(source=name, reason=f"image is empty")
    try:
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(source=name, reason=f"cannot decode image ({exc})") from exc


def _check_size(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(source=name, reason=f"{width}x{height} pixels is over the limit of "
                         f"{_megapixels(max_pixels)}: {SMALLER_COPY}")
    try:
        mode = ImageMode.getmode(image.mode)
        per_pixel = len(mode.bands) * np.dtype(mode.typestr).itemsize
    except (KeyError, TypeError):
        per_pixel = 4   # a mode PIL does not describe: assume the widest common one
    if width * height * per_pixel > MAX_DECODED_BYTES:
        raise ImageError(source=name, reason=f"{width}x{height} {image.mode} would take "
                         f"{width * height * per_pixel / 1e6:.0f} MB decoded, over the limit of "
                         f"{MAX_DECODED_BYTES / 1e6:.0f} MB: {SMALLER_COPY}")


def format_of(file) -> str:
    """The image format of a binary file, by PIL's plugin name, from its first 16 bytes (as PIL
    itself picks a plugin) without parsing it; "" when no plugin recognises them."""
    Image.init()   # every plugin's check, not only the few PIL registers up front
    file.seek(0)
    prefix = file.read(16).ljust(16, b"\0")   # some plugins' checks read past a shorter file's end
    return next((f for f in Image.ID if Image.OPEN[f][1] and Image.OPEN[f][1](prefix)), "")


def _open(file, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL's own warning, from 89 MP, would word it as an attack: ours follows at once.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()   # every plugin registered, so that each of FORMATS is known
            # (MPO, a phone's JPEG with extra frames, is opened by the JPEG plugin.)
            image = Image.open(file, formats=[f for f in FORMATS if f != "MPO"])
            # The header alone gives the size: refuse before any pixel is decoded.
            _check_size(image, name, max_pixels)
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        found = format_of(file)
        if found and found not in FORMATS:
            raise ImageError(source=name, reason=f"unsupported image format {found} (fecsim reads "
                             f"{', '.join(FORMATS)})") from exc
        raise ImageError(source=name, reason=f"not an image file") from exc
    except Image.DecompressionBombError as exc:   # PIL refuses to open twice its warning size
        raise ImageError(source=name, reason=f"over {_megapixels(2 * Image.MAX_IMAGE_PIXELS)}, "
                         f"far over the limit of {_megapixels(max_pixels)}: {SMALLER_COPY}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(source=name, reason=f"truncated or corrupt image ({exc})") from exc
    return image


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels"


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(source=name, reason=f"expected HxW, HxWx3 or HxWx4 pixels")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise ImageError(source=name, reason=f"pixels must be numbers")
        # Floats are taken as 0..1, as skimage and matplotlib write them.
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array.astype(np.float64) * scale, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any mode (L, LA, RGBA, P, CMYK, I;16, F, ...) to RGB; transparency goes on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image)
        if pixels.max(initial=0) > 255:   # a 16-bit range: 65535 -> 255
            # In the pixels' own type: float64 copies of a large photo take gigabytes.
            pixels = pixels // 257 if pixels.dtype.kind in "iu" else pixels / np.float32(257)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")
