"""Image generation for sample grids: prompts × seeds with a chosen sampler."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageDraw

from adaptkit.evaluation.generate import GenerationSettings, cross, generate_images, in_rows

if TYPE_CHECKING:
    from adaptkit.recipe import Recipe


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: every prompt with every seed."""

    prompts: Sequence[str]
    seeds: Sequence[int]
    steps: int = 25
    guidance: float = 7.5
    resolution: int = 512
    negative_prompt: str = ""

    @classmethod
    def from_recipe(cls, recipe: "Recipe") -> "SampleSpec":
        """The recipe's ``[sample]`` table (resolution defaults to ``data.resolution``)."""
        sample = recipe.sample
        return cls(
            prompts=sample.prompts,
            seeds=sample.seeds,
            steps=sample.steps,
            guidance=sample.guidance,
            resolution=sample.resolution or recipe.data.resolution,
            negative_prompt=sample.negative_prompt,
        )


def _generate_flat(pipeline, spec: SampleSpec, output_type: str) -> list:
    """One image per (prompt, seed), prompt-major, through the one generation loop."""
    prompts, seeds = cross(spec.prompts, spec.seeds)
    settings = GenerationSettings(spec.steps, spec.guidance, spec.resolution, spec.negative_prompt)
    return generate_images(pipeline, prompts, seeds, settings, output_type)


def generate(pipeline, spec: SampleSpec) -> list[list[Image.Image]]:
    """PIL images as rows (one per prompt) of columns (one per seed)."""
    flat = _generate_flat(pipeline, spec, "pil")
    return in_rows(flat, len(spec.seeds))


def generate_arrays(pipeline, spec: SampleSpec) -> torch.Tensor:
    """A float tensor (prompts, seeds, H, W, 3) in [0, 1], for exact comparisons."""
    flat = [torch.from_numpy(a) for a in _generate_flat(pipeline, spec, "np")]
    return torch.stack(flat).reshape(len(spec.prompts), len(spec.seeds), *flat[0].shape)


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
