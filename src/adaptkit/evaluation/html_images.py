"""Images embedded in the HTML reports as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


def png_data_uri(image: "Image.Image") -> str:
    """``data:image/png;base64,...`` of a PIL image."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img_tag(image: "Image.Image", alt: str) -> str:
    """An ``<img>`` of ``image`` (embedded) with ``alt`` text."""
    return f'<img src="{png_data_uri(image)}" alt="{html.escape(alt)}">'
