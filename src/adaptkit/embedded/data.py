"""Labelled image arrays drawn from the world (for probes, VAE and UNet training)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from adaptkit.embedded.styles import STYLE_CLASSES
from adaptkit.embedded.world import (
    BACKGROUNDS,
    COLOURS,
    EVAL_SEED_OFFSET,
    SHAPES,
    SIZES,
    Scene,
    Split,
    render_scene,
    sample_scene,
    scene_caption,
)

#: Label spaces of the probe heads, in class-index order.
LABELS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": COLOURS,
    "background": BACKGROUNDS,
    "size": SIZES,
    "style": STYLE_CLASSES,
}


@dataclass
class Batch:
    """Images (uint8, N×H×W×3), integer labels per head and captions."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    captions: list[str]


def _render(args: tuple[Scene, int, str]) -> np.ndarray:
    scene, size, style = args
    return np.asarray(render_scene(scene, size, style), dtype=np.uint8)


def render_many(scenes: Sequence[Scene], styles: Sequence[str], size: int = 64, workers: int = 1) -> np.ndarray:
    """Render scenes (each in its style) to a uint8 array, optionally in parallel."""
    jobs = [(sc, size, st) for sc, st in zip(scenes, styles)]
    if workers > 1 and len(jobs) > 256:
        with get_context("fork").Pool(workers) as pool:
            arrays = pool.map(_render, jobs, chunksize=64)
    else:
        arrays = [_render(j) for j in jobs]
    return np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)


def make_batch(
    n: int,
    seed: int,
    split: Split = "train",
    styles: Sequence[str] = ("plain",),
    size: int = 64,
    workers: int = 1,
) -> Batch:
    """``n`` scenes from ``split``, styles cycled evenly, rendered at ``size``.

    ``split="eval"`` (or ``"any"`` with a seed above
    :data:`~adaptkit.embedded.world.EVAL_SEED_OFFSET`) gives evaluation data.
    """
    if split == "eval" and seed < EVAL_SEED_OFFSET:
        seed += EVAL_SEED_OFFSET
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split) for _ in range(n)]
    style_list = [styles[i % len(styles)] for i in range(n)]
    images = render_many(scenes, style_list, size, workers)
    labels = {
        "shape": np.array([SHAPES.index(s.shape) for s in scenes]),
        "colour": np.array([COLOURS.index(s.colour) for s in scenes]),
        "background": np.array([BACKGROUNDS.index(s.background) for s in scenes]),
        "size": np.array([SIZES.index(s.size) for s in scenes]),
        "style": np.array([STYLE_CLASSES.index(st) for st in style_list]),
    }
    return Batch(images, labels, [scene_caption(s) for s in scenes])
