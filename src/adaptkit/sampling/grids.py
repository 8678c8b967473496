"""Tiling generated images: labelled grids and before/after sheets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw


def make_grid(
    rows: Sequence[Sequence[Image.Image]], row_labels: Sequence[str] | None = None, label_width: int = 0
) -> Image.Image:
    """Tile images (rows × columns) with an optional text label left of each row."""
    if not rows or not rows[0]:
        raise ValueError("nothing to tile")
    width, height = rows[0][0].size
    label_width = label_width or (min(320, max(120, 2 * width)) if row_labels else 0)
    columns = max(len(r) for r in rows)
    grid = Image.new("RGB", (label_width + columns * width, len(rows) * height), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image.convert("RGB").resize((width, height)), (label_width + c * width, r * height))
        if row_labels:
            _draw_wrapped(draw, row_labels[r], (4, r * height + 4), label_width - 8)
    return grid


def _draw_wrapped(draw: ImageDraw.ImageDraw, text: str, origin: tuple[int, int], max_width: int) -> None:
    words, line, y = text.split(), "", origin[1]
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial) > max_width and line:
            draw.text((origin[0], y), line, fill="black")
            y, line = y + 12, word
        else:
            line = trial
    if line:
        draw.text((origin[0], y), line, fill="black")


def save_grid(rows: Sequence[Sequence[Image.Image]], labels: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows, labels).save(path)
    return path


def save_before_after(
    base_rows: Sequence[Sequence[Image.Image]],
    adapted_rows: Sequence[Sequence[Image.Image]],
    prompts: Sequence[str],
    path: Path,
) -> Path:
    """One grid with, per prompt, a row of base images above a row of adapted images (same seeds)."""
    paired = [row for pair in zip(base_rows, adapted_rows) for row in pair]
    labels = [f"{tag}: {prompt}" for prompt in prompts for tag in ("base", "adapted")]
    return save_grid(paired, labels, path)
