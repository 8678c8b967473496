"""The one generation loop: prompts × seeds, batched, deterministic per seed.

Sample grids (:func:`generate_grid`), ``adaptkit sample``, the embedded-world probes and the
before/after evaluation (base and adapted pipeline, same prompts, seeds and settings) all
generate through :func:`generate_images`, with one :class:`GenerationSettings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from PIL import Image

    from adaptkit.recipe import Recipe


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings shared by every image of one generation (the sampler itself is the pipeline's)."""

    steps: int = 25
    guidance: float = 7.5
    resolution: int | None = None
    negative_prompt: str = ""
    batch_size: int = 8

    @classmethod
    def from_recipe(cls, recipe: "Recipe", batch_size: int = 8) -> "GenerationSettings":
        """The recipe's ``[sample]`` settings (resolution defaults to ``data.resolution``)."""
        sample = recipe.sample
        return cls(
            steps=sample.steps,
            guidance=sample.guidance,
            resolution=sample.resolution or recipe.data.resolution,
            negative_prompt=sample.negative_prompt,
            batch_size=batch_size,
        )


@torch.no_grad()
def generate_images(
    pipeline: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: GenerationSettings,
    output_type: str = "pil",
) -> list[Any]:
    """One image per ``(prompts[i], seeds[i])``, in order, ``settings.batch_size`` at a time.

    Every image gets its own CPU generator seeded with its seed, so an image depends only on its
    prompt, seed and the settings — the same on any device, in any batch.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    images: list[Any] = []
    step = max(1, settings.batch_size)
    for i in range(0, len(prompts), step):
        batch = list(prompts[i : i + step])
        out = pipeline(
            batch,
            negative_prompt=[settings.negative_prompt] * len(batch) if settings.negative_prompt else None,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            height=settings.resolution,
            width=settings.resolution,
            generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i : i + step]],
            output_type=output_type,
        )
        images.extend(list(out.images))
    return images


def generate_grid(
    pipeline: Any, prompts: Sequence[str], seeds: Sequence[int], settings: GenerationSettings
) -> "list[list[Image.Image]]":
    """Every prompt with every seed, as rows (one per prompt) of PIL images (one per seed)."""
    flat_prompts, flat_seeds = cross(prompts, seeds)
    return in_rows(generate_images(pipeline, flat_prompts, flat_seeds, settings), len(seeds))


def cross(prompts: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[int]]:
    """Every prompt with every seed, prompt-major, as two parallel lists."""
    return [p for p in prompts for _ in seeds], [s for _ in prompts for s in seeds]


def in_rows(images: "Sequence[Image.Image]", columns: int) -> "list[list[Image.Image]]":
    """A flat prompt-major list as rows of ``columns`` images."""
    return [list(images[i : i + columns]) for i in range(0, len(images), columns)]
