"""Decoding image bytes and turning any PIL mode into 8-bit RGB.

One place knows about image modes: palette and alpha images are composited onto white,
16-bit and 32-bit integer images are scaled (not clipped) to 8 bits, float images in
``[0, 1]`` are stretched to ``[0, 255]``, CMYK and the rest go through PIL's own conversion.
"""

from __future__ import annotations

import io
from os import PathLike

import numpy as np
from PIL import Image, ImageOps

#: Modes that carry an alpha channel (composited onto white).
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
#: 16-bit integer modes (scaled by 1/257 to 8 bits).
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

WHITE = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


def open_image(data: bytes | str | PathLike[str]) -> Image.Image:
    """Fully decode an encoded image (bytes or a file path); raise ``OSError``/``ValueError`` if it cannot be."""
    _refuse_empty(data)
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    image = Image.open(source)
    image.load()
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:  # photos taken sideways
        image = ImageOps.exif_transpose(image)
    return image


def _refuse_empty(data: bytes | str | PathLike[str]) -> None:
    """A zero-byte image gets a plain message (PIL's names a BytesIO object)."""
    if isinstance(data, (bytes, bytearray)) and not data:
        raise ValueError("empty file (0 bytes)")


def check_image(data: bytes) -> tuple[tuple[int, int], str]:
    """Cheaply check encoded image bytes without decoding the pixels; return ``(size, mode)``.

    Reads the header and, for formats that support it (PNG), walks the chunks and their
    checksums, which catches corrupted and truncated files. Raises on failure.
    """
    _refuse_empty(data)
    with Image.open(io.BytesIO(data)) as image:
        size, mode = image.size, image.mode
        image.verify()
    return size, mode


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


def decode_rgb(data: bytes | str | PathLike[str]) -> Image.Image:
    """Decode encoded image bytes (or a file) to an 8-bit RGB image."""
    return to_rgb(open_image(data))
