"""Safe image loading: paths, encoded bytes, PIL images or numpy arrays -> an upright RGB PIL image."""
from __future__ import annotations

import io
import math
import os
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageMode, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .text import bounded

# Larger than nearly any camera photo (a 50 MP phone shot is 5e7 px); refuse beyond it before decoding,
# so a decompression bomb costs a header read, not gigabytes.
MAX_PIXELS = 80_000_000
# Decoded bytes (pixels x bands x bytes per sample, from the header's mode), refused beyond this
# before decoding: an 80 MP RGB photo is 240 MB, while a 16-bit or RGBA file needs more per pixel.
MAX_DECODED_BYTES = 256_000_000
# Photos are worked on at most this large (longer side, pixels): a face MTCNN can find (8 % of
# the longer side, 200 px here) is still sharper than the model's 48-112 px input, and a 50 MP
# JPEG decodes straight to 1/4 size (draft), so detection and crops never need the full decode.
WORK_MAX_SIDE = 2560
# All the photos of one request together, by their headers (60 phone photos of 25 MP): the time
# and memory one request may take, whatever the number of photos.
MAX_REQUEST_PIXELS = 1_500_000_000
SMALLER_COPY = "send a smaller copy of the photo (phones can share one at a smaller size)"
# The only formats PIL may parse, by its plugin names; the file extension each is stored under.
# Every other plugin stays untried: an .eps upload, say, would make PIL run Ghostscript.
FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
           "GIF": ".gif", "TIFF": ".tif"}


def describe(source) -> str:
    """A short name for error messages: the path, or the kind of in-memory object."""
    if isinstance(source, (str, os.PathLike)):
        return bounded(str(source), 300)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.size[0]}x{source.size[1]} {source.mode}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def load_image(source, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Return `source` as an RGB image with its EXIF rotation applied, at full size.

    Raises ImageError (naming the source) for missing, non-image, truncated or oversized inputs.
    """
    return _load(source, max_pixels, None)[0]


def load_reduced(source, max_side: int = WORK_MAX_SIDE,
                 max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, float]:
    """As load_image, but at most max_side pixels on the longer side, reduced while decoding (a
    JPEG decodes at 1/2, 1/4 or 1/8 size) or right after. Returns (image, scale): pixels of the
    upright original per pixel of the image returned (1.0 when it was small enough)."""
    return _load(source, max_pixels, max_side)


def _load(source, max_pixels: int, max_side: int | None) -> tuple[Image.Image, float]:
    name = describe(source)
    if isinstance(source, np.ndarray):
        image = _from_array(source, name)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        try:
            file = open(source, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ImageError(source=name, reason="no such file") from None
        except (OSError, ValueError) as exc:   # a name over 255 characters, a NUL byte...
            reason = getattr(exc, "strerror", None) or exc
            raise ImageError(source=name, reason=f"cannot open it ({reason})") from None
        with file:
            image = _open(file, name, max_pixels, max_side)
    elif isinstance(source, (bytes, bytearray)):   # an encoded file, e.g. a download
        image = _open(io.BytesIO(source), name, max_pixels, max_side)
    else:
        raise ImageError(source=name, reason=f"expected a file path, encoded bytes, PIL image or numpy array")
    _check_size(image, name, max_pixels)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(source=name, reason=f"image is empty")
    try:
        full_width, full_height = image.info.get(_FULL_SIZE, image.size)   # before draft()
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:   # else no copy is made
            image = ImageOps.exif_transpose(image)
            if image.size[0] != width:   # turned a quarter: the original's height is its width
                full_width = full_height
        if max_side and image.mode in _RESIZABLE:   # reduced before any conversion copies it
            image = _fitted(image, max_side)
        image = _to_rgb(image)
        if max_side:
            image = _fitted(image, max_side)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(source=name, reason=f"cannot decode image ({exc})") from exc
    return image, full_width / image.width


_FULL_SIZE = "fecsim_full_size"   # a file's size as stored, before draft() reduced it
_RESIZABLE = ("RGB", "RGBA", "L", "LA", "I", "F")   # modes PIL resizes as they are


def _fitted(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: box-averages by a whole factor first, as fast as a JPEG draft and as sharp.
    return image.resize(size, Image.BILINEAR, reducing_gap=2.0)


def request_pixels(sources) -> int:
    """The pixels of every image file or encoded image among `sources`, from their headers alone
    (nothing decoded); sources that cannot be read count 0 (they get their own error later)."""
    total = 0
    for source in sources:
        try:
            opened = (open(source, "rb") if isinstance(source, (str, os.PathLike))
                      else io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else None)
            if opened is None:
                size = getattr(source, "size", (0, 0))
                total += (source.shape[0] * source.shape[1] if isinstance(source, np.ndarray)
                          else size[0] * size[1])
                continue
            with opened, Image.open(opened, formats=[f for f in FORMATS if f != "MPO"]) as image:
                total += image.size[0] * image.size[1]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                UnidentifiedImageError):
            continue
    return total


def check_request_pixels(sources, limit: int | None = None) -> None:
    """ImageError when the images of one request hold more than `limit` pixels together
    (default: MAX_REQUEST_PIXELS)."""
    limit = MAX_REQUEST_PIXELS if limit is None else limit
    total = request_pixels(sources)
    if total > limit:
        raise ImageError(f"these photos hold {total / 1e6:,.0f} million pixels together, over the "
                         f"limit of {limit / 1e6:,.0f} million for one request: send fewer or "
                         "smaller photos")


def _check_size(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(source=name, reason=f"{width}x{height} pixels is over the limit of "
                         f"{_megapixels(max_pixels)}: {SMALLER_COPY}")
    per_pixel = _decoded_bytes_per_pixel(image)
    if width * height * per_pixel > MAX_DECODED_BYTES:
        raise ImageError(source=name, reason=f"{width}x{height} {image.mode} would take "
                         f"{width * height * per_pixel / 1e6:.0f} MB decoded, over the limit of "
                         f"{MAX_DECODED_BYTES / 1e6:.0f} MB: {SMALLER_COPY}")


def _decoded_bytes_per_pixel(image: Image.Image) -> int:
    """Bytes per pixel of the widest copy decoding makes: the file's own mode, or what _to_rgb
    turns it into (RGB; RGBA for a palette with transparency, where an 80 MP palette PNG is
    80 MB as stored but 320 MB on its way to RGB)."""
    try:
        mode = ImageMode.getmode(image.mode)
        own = len(mode.bands) * np.dtype(mode.typestr).itemsize
    except (KeyError, TypeError):
        own = 4   # a mode PIL does not describe: assume the widest common one
    alpha = "A" in image.mode or "transparency" in image.info
    return max(own, 4 if alpha else 3)


def format_of(file) -> str:
    """The image format of a binary file, by PIL's plugin name, from its first 16 bytes (as PIL
    itself picks a plugin) without parsing it; "" when no plugin recognises them."""
    Image.init()   # every plugin's check, not only the few PIL registers up front
    file.seek(0)
    prefix = file.read(16).ljust(16, b"\0")   # some plugins' checks read past a shorter file's end
    return next((f for f in Image.ID if Image.OPEN[f][1] and Image.OPEN[f][1](prefix)), "")


def _open(file, name: str, max_pixels: int, max_side: int | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL's own warning, from 89 MP, would word it as an attack: ours follows at once.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()   # every plugin registered, so that each of FORMATS is known
            # (MPO, a phone's JPEG with extra frames, is opened by the JPEG plugin.)
            image = Image.open(file, formats=[f for f in FORMATS if f != "MPO"])
            # The header alone gives the size: refuse before any pixel is decoded.
            _check_size(image, name, max_pixels)
            full = image.size
            if max_side and image.format in ("JPEG", "MPO") and max(full) > max_side:
                # Decoded straight at 1/2, 1/4 or 1/8 size, never less than max_side.
                scale = max_side / max(full)
                image.draft(image.mode, (math.ceil(full[0] * scale), math.ceil(full[1] * scale)))
            image.load()
            image.info[_FULL_SIZE] = full
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
        image = image.convert("RGBA")   # one RGBA copy (none when it is one), its alpha the mask
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image)
        return background
    return image.convert("RGB")
