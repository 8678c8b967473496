"""Decoding image bytes and turning any PIL mode into 8-bit RGB.

Whatever PIL raises on broken data while decoding one image becomes :class:`UndecodableImage`,
so callers skip that image with one except clause. One place knows about image modes: palette
and alpha images are composited onto white, 16-bit and 32-bit integer images are scaled (not
clipped) to 8 bits, float images in ``[0, 1]`` are stretched to ``[0, 255]``, CMYK and the rest
go through PIL's own conversion.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike

import numpy as np
from PIL import Image, ImageOps

#: Modes that carry an alpha channel (composited onto white).
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
#: The ``Example.meta`` key holding an image's transparency ("L"), when it has one.
ALPHA_KEY = "alpha"
#: The ``Example.meta`` key holding the image's file name, when it came from a file.
FILE_NAME_KEY = "file_name"
#: 16-bit integer modes (scaled by 1/257 to 8 bits).
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

WHITE = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


class UndecodableImage(ValueError):
    """Encoded image data that PIL cannot read; the message says why (the cause is chained)."""


@contextmanager
def _undecodable() -> Iterator[None]:
    """Turn whatever PIL raises on broken or hostile data into :class:`UndecodableImage`.

    PIL's decoders raise OSError, SyntaxError, ValueError, IndexError (a PNG without IDAT),
    struct.error, EOFError, KeyError, TypeError, ``Image.DecompressionBombError`` and more,
    depending on the format and the damage; no fixed list covers them all, so any Exception
    while reading *one* image counts as that image being undecodable. MemoryError is not a
    property of the image and is not caught; a file that cannot be opened (a missing path)
    stays the OSError it is.
    """
    try:
        yield
    except (UndecodableImage, MemoryError, FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring: any failure to decode one image
        raise UndecodableImage(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    """PIL's message, or the exception's name where the message alone says nothing (``list index out of range``)."""
    message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        return message
    return f"broken image data ({type(exc).__name__}: {message})"


def open_image(data: bytes | str | PathLike[str]) -> Image.Image:
    """Fully decode an encoded image (bytes or a file path); raise :class:`UndecodableImage` if it cannot be."""
    _refuse_empty(data)
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with _undecodable():
        image = Image.open(source)
        image.load()
        if image.getexif().get(EXIF_ORIENTATION, 1) != 1:  # photos taken sideways
            image = ImageOps.exif_transpose(image)
    return image


def _refuse_empty(data: bytes | str | PathLike[str]) -> None:
    """A zero-byte image gets a plain message (PIL's names a BytesIO object)."""
    if isinstance(data, (bytes, bytearray)) and not data:
        raise UndecodableImage("empty file (0 bytes)")


def check_image(data: bytes) -> tuple[tuple[int, int], str]:
    """Cheaply check encoded image bytes without decoding the pixels; return ``(size, mode)``, the size
    as decoded (:func:`oriented_size`).

    Reads the header and, for formats that support it (PNG), walks the chunks and their
    checksums, which catches corrupted and truncated files. Raises :class:`UndecodableImage` on failure.
    """
    _refuse_empty(data)
    with _undecodable(), Image.open(io.BytesIO(data)) as image:
        size, mode = oriented_size(image), image.mode
        image.verify()
    return size, mode


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) an opened, not yet decoded image has once :func:`open_image` applies its
    EXIF orientation. A PNG's orientation is seen only when its eXIf chunk precedes the pixels
    (Pillow reads a later one by decoding them)."""
    header_exif = image.format != "PNG" or "exif" in image.info
    orientation = image.getexif().get(EXIF_ORIENTATION, 1) if header_exif else 1
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def header_size(data: bytes) -> tuple[int, int] | None:
    """The decoded (width, height) of encoded image bytes, from its header alone (the first bytes of
    a file may do); None when the header cannot be read from ``data``."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return oriented_size(image)
    except Exception:  # noqa: BLE001 - any PIL failure on a partial or broken header means "not known from this"
        return None


def _scale_to_uint8(array: np.ndarray, full_scale: float) -> np.ndarray:
    scaled = np.round(array.astype(np.float64) * (255.0 / full_scale))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _integer_to_l(image: Image.Image) -> Image.Image:
    """16-bit or 32-bit integer grey -> 8-bit grey, scaled by the range the values use."""
    array = np.asarray(image)
    if image.mode in SIXTEEN_BIT_MODES:
        full_scale = 65535.0
    else:  # "I": 32-bit; values up to 255 are 8-bit data, up to 65535 16-bit data
        peak = float(array.max(initial=0))
        full_scale = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    return Image.fromarray(_scale_to_uint8(array, full_scale))


def _float_to_l(image: Image.Image) -> Image.Image:
    """Float grey -> 8-bit grey: values within ``[0, 1]`` are stretched, others clipped to ``[0, 255]``."""
    array = np.nan_to_num(np.asarray(image, dtype=np.float64))
    full_scale = 1.0 if array.size and array.min() >= 0.0 and array.max() <= 1.0 else 255.0
    return Image.fromarray(_scale_to_uint8(array, full_scale))


def _flatten_alpha(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB, whatever its mode (L, LA, P, RGBA, CMYK, I;16, I, F, ...).

    Transparency is composited onto white; high bit-depth grey is scaled, not clipped.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        return _flatten_alpha(image)
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        return _integer_to_l(image).convert("RGB")
    if mode == "F":
        return _float_to_l(image).convert("RGB")
    return image.convert("RGB")


def alpha_of(image: Image.Image) -> Image.Image | None:
    """``image``'s transparency as an 8-bit "L" image (255 = opaque), or None when it has none."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return None
    with _undecodable():
        return image.convert("RGBA").getchannel("A")


def decode_rgb_and_alpha(data: bytes | str | PathLike[str]) -> tuple[Image.Image, Image.Image | None]:
    """:func:`decode_rgb`, and the image's transparency (:func:`alpha_of`) for a masked loss."""
    image = open_image(data)
    with _undecodable():
        return to_rgb(image), alpha_of(image)


def decode_rgb(data: bytes | str | PathLike[str]) -> Image.Image:
    """Decode encoded image bytes (or a file) to an 8-bit RGB image; raise :class:`UndecodableImage` if it cannot be."""
    image = open_image(data)
    with _undecodable():  # a mode PIL opens but cannot convert
        return to_rgb(image)
