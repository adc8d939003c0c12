"""Safe image loading: paths, encoded bytes, PIL images or numpy arrays -> an upright RGB PIL image."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# Larger than nearly any camera photo (a 50 MP phone shot is 5e7 px); refuse beyond it before decoding,
# so a decompression bomb costs a header read, not gigabytes.
MAX_PIXELS = 80_000_000


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
            raise ImageError(f"{name}: no such file")
        image = _open(Path(source), name, max_pixels)
    elif isinstance(source, (bytes, bytearray)):   # an encoded file, e.g. a download
        image = _open(io.BytesIO(source), name, max_pixels)
    else:
        raise ImageError(f"{name}: expected a file path, encoded bytes, PIL image or numpy array")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")
    if width < 1 or height < 1:
        raise ImageError(f"{name}: image is empty")
    try:
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: cannot decode image ({exc})") from exc


def _open(file, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            # The header alone gives the size: refuse before any pixel is decoded.
            if image.size[0] * image.size[1] > max_pixels:
                raise ImageError(
                    f"{name}: {image.size[0]}x{image.size[1]} pixels is over the limit of {max_pixels}")
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image file") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from exc
    return image


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected HxW, HxWx3 or HxWx4 pixels")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise ImageError(f"{name}: pixels must be numbers")
        # Floats are taken as 0..1, as skimage and matplotlib write them.
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array.astype(np.float64) * scale, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any mode (L, LA, RGBA, P, CMYK, I;16, F, ...) to RGB; transparency goes on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max(initial=0)
        if top > 0:
            pixels = pixels * (255.0 / (65535.0 if top > 255 else 255.0))
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")
