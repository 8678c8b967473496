"""A look at a dataset as training will see it: the first examples through the image pipeline, on one sheet."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from adaptkit.component import Example, StyleDataset
from adaptkit.data.pipeline import ImagePipeline, to_image

BACKGROUND = (255, 255, 255)


def sheet_layout(count: int, columns: int | None = None) -> tuple[int, int]:
    """(columns, rows) of a sheet of ``count`` images: ``columns`` or a near-square grid."""
    if count < 1:
        raise ValueError("a contact sheet needs at least one image")
    columns = min(count, columns or math.ceil(math.sqrt(count)))
    return columns, math.ceil(count / columns)


def contact_sheet(
    images: Sequence[Image.Image], thumb: int = 128, columns: int | None = None, gap: int = 4
) -> Image.Image:
    """Images in a grid, row by row, each fitted into a ``thumb``-square cell, ``gap`` pixels apart.

    The sheet is ``columns * thumb + (columns + 1) * gap`` wide and likewise high.
    """
    cols, rows = sheet_layout(len(images), columns)
    sheet = Image.new("RGB", (cols * thumb + (cols + 1) * gap, rows * thumb + (rows + 1) * gap), BACKGROUND)
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        cell = ImageOps.contain(image.convert("RGB"), (thumb, thumb), Image.Resampling.BICUBIC)
        left = gap + col * (thumb + gap) + (thumb - cell.width) // 2
        top = gap + row * (thumb + gap) + (thumb - cell.height) // 2
        sheet.paste(cell, (left, top))
    return sheet


@dataclass
class Preview:
    """The first examples of a dataset and their contact sheet (images after the pipeline)."""

    examples: list[Example]
    sheet: Image.Image


def preview(dataset: StyleDataset, pipeline: ImagePipeline, rows: int = 8, seed: int = 0, thumb: int = 128) -> Preview:
    """Decode the first ``rows`` examples, pass them through ``pipeline`` (crops and flips seeded by ``seed``)."""
    count = min(rows, len(dataset))
    examples = [dataset[index] for index in range(count)]
    rng = random.Random(seed)
    processed = [to_image(pipeline(example.image, rng).pixel_values) for example in examples]
    return Preview(examples, contact_sheet(processed, thumb=thumb))
