"""The report's "Training sets" section: each set of a run with several (``[[data.sets]]``) — its
role, repeats and loss weight — and thumbnails of the images a local folder set holds, so a prior
set's generated class images stand beside the style images they regularise."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.evaluation.html_images import img_tag

if TYPE_CHECKING:
    from adaptkit.recipe import Recipe

THUMBS = 6
THUMB = 96


def folder_thumbnails(folder: Path, count: int = THUMBS) -> list:
    """Up to ``count`` thumbnails of the images in ``folder`` (sorted by name); none when unreadable."""
    from PIL import Image

    from adaptkit.data.captioning import folder_images

    thumbs = []
    if not folder.is_dir():
        return thumbs
    for path in folder_images(folder)[:count]:
        try:
            with Image.open(path) as image:
                thumb = image.convert("RGB")
                thumb.thumbnail((THUMB, THUMB))
                thumbs.append(thumb)
        except OSError:
            continue
    return thumbs


def sets_html(recipe: "Recipe") -> str | None:
    """The section's HTML, or None for a run with one set."""
    data = recipe.data
    if not data.sets:
        return None
    entries = [("style", data.adapter, data.options, data.repeats, 1.0, None)]
    entries += [(e.role, e.adapter, e.options, e.repeats, e.loss_weight, e.class_prompt) for e in data.sets]
    rows = []
    for role, adapter, options, repeats, weight, prompt in entries:
        source = options.get("source")
        local = Path(str(source)).expanduser() if isinstance(source, str) else None
        thumbs = folder_thumbnails(local) if local is not None and local.is_dir() else []
        images = "".join(img_tag(t, f"{role} image") for t in thumbs) or f"<i>images from {html.escape(adapter)}</i>"
        what = f"{html.escape(role)}: {html.escape(adapter)}" + (f" — “{html.escape(prompt)}”" if prompt else "")
        rows.append(
            f"<tr><td>{what}</td><td class=num>{repeats}</td><td class=num>{weight:g}</td><td>{images}</td></tr>"
        )
    head = "<tr><th>set</th><th>repeats</th><th>loss weight</th><th>images</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"
