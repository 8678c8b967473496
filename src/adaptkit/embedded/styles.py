"""Procedural visual styles over the base world.

Each style re-renders the same :class:`~adaptkit.embedded.world.Scene`, keeping
the shape and its hue recognisable, so shape/colour probes still work on styled
images.  Captions never mention the style.

* ``ink``    — New-Yorker-cartoon feel: cream paper grain, black ink outline,
  diagonal hatching over a desaturated (hue-preserving) wash, cross-hatched
  cast shadow.
* ``pop``    — Pokémon/Simpsons feel: flat pastel fill, thick black outline,
  cel-shaded crescent and a white highlight.
* ``poster`` — screen-print feel: halftone dots, drop shadow, blotchy ink
  texture and grain, posterised to 4 levels per channel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from adaptkit.embedded.world import (
    BACKGROUND_RGB,
    COLOUR_RGB,
    SUPERSAMPLE,
    Scene,
    outline_mask,
    render_plain,
    rgb01,
    shape_mask,
    to_image,
)

#: Names of the procedural styles (the unstyled base world is ``"plain"``).
STYLES: tuple[str, ...] = ("ink", "pop", "poster")
#: Classes of the style probe.
STYLE_CLASSES: tuple[str, ...] = ("plain", *STYLES)

_WHITE = np.ones(3, dtype=np.float32)
_INK = np.asarray([0.07, 0.07, 0.08], dtype=np.float32)


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:side, 0:side]
    return xx.astype(np.float32), yy.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, side: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of shape (side, side)."""
    small = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((side, side), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float32), -1.0, 1.0)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    return a * (1 - t) + b * t


def render_ink(scene: Scene, size: int = 64) -> Image.Image:
    """Ink cartoon: outline, hatching, desaturated wash, hatched shadow."""
    side = size * SUPERSAMPLE
    rng = np.random.default_rng(scene.seed)
    xx, yy = _grid(side)
    period, line = 4 * SUPERSAMPLE, SUPERSAMPLE
    bg = _mix(rgb01(BACKGROUND_RGB[scene.background]), rgb01((250, 238, 212)), 0.12)
    canvas = np.broadcast_to(bg, (side, side, 3)).copy()
    canvas += 0.035 * _smooth_noise(rng, side, 24)[..., None]
    # cross-hatched cast shadow to the lower right
    shift = 1.6 * SUPERSAMPLE
    fill = shape_mask(scene, side)
    shadow = np.clip(shape_mask(scene, side, (shift * 2, shift)) - fill, 0, 1)
    cross = ((xx - yy) % period < line).astype(np.float32)
    canvas = _mix(canvas, _INK, (shadow * cross * 0.6)[..., None])
    # desaturated, slightly lightened wash that keeps the hue
    col = rgb01(COLOUR_RGB[scene.colour])
    wash = _mix(col, np.full(3, col.mean(), dtype=np.float32), 0.3)
    wash = _mix(wash, _WHITE, 0.12)
    canvas = _mix(canvas, wash, fill[..., None])
    hatch = (((xx + yy) % period) < line).astype(np.float32)
    canvas = _mix(canvas, _INK, (fill * hatch * 0.5)[..., None])
    stroke = outline_mask(scene, side, SUPERSAMPLE, SUPERSAMPLE // 2)
    canvas = _mix(canvas, _INK, stroke[..., None])
    return to_image(np.clip(canvas, 0, 1), size)


def render_pop(scene: Scene, size: int = 64) -> Image.Image:
    """Flat cartoon: pastel fill, cel shade, highlight, thick black outline."""
    side = size * SUPERSAMPLE
    xx, yy = _grid(side)
    bg = rgb01(BACKGROUND_RGB[scene.background])
    canvas = np.broadcast_to(bg, (side, side, 3)).copy()
    fill = shape_mask(scene, side)
    col = _mix(rgb01(COLOUR_RGB[scene.colour]), _WHITE, 0.38)
    canvas = _mix(canvas, col, fill[..., None])
    shift = 2.5 * SUPERSAMPLE
    lit = shape_mask(scene, side, (-shift, -shift))
    shade = np.clip(fill - lit, 0, 1)
    canvas = _mix(canvas, col * 0.72, shade[..., None])
    r = scene.radius * side
    hx, hy = scene.cx * side - 0.35 * r, scene.cy * side - 0.3 * r
    spot = ((xx - hx) / (0.17 * r)) ** 2 + ((yy - hy) / (0.11 * r)) ** 2 < 1.0
    canvas = _mix(canvas, _WHITE, (spot * fill * 0.9)[..., None])
    stroke = outline_mask(scene, side, 2 * SUPERSAMPLE, SUPERSAMPLE // 2)
    canvas = _mix(canvas, _INK, stroke[..., None])
    return to_image(np.clip(canvas, 0, 1), size)


def render_poster(scene: Scene, size: int = 64, levels: int = 4) -> Image.Image:
    """Screen print: halftone dots, drop shadow, texture, posterised."""
    side = size * SUPERSAMPLE
    rng = np.random.default_rng(scene.seed)
    xx, yy = _grid(side)
    bg = rgb01(BACKGROUND_RGB[scene.background])
    canvas = np.broadcast_to(bg, (side, side, 3)).copy()
    fill = shape_mask(scene, side)
    shift = 2.0 * SUPERSAMPLE
    drop = np.clip(shape_mask(scene, side, (shift, shift)) - fill, 0, 1)
    dark_bg = bg * 0.55 if bg.mean() > 0.3 else bg + 0.25
    canvas = _mix(canvas, dark_bg, drop[..., None])
    col = rgb01(COLOUR_RGB[scene.colour])
    canvas = _mix(canvas, col, fill[..., None])
    # halftone: dot radius grows towards the lower right of the shape
    period = 4 * SUPERSAMPLE
    r = scene.radius * side
    t = np.clip(((xx - scene.cx * side) + (yy - scene.cy * side)) / (2.4 * r) + 0.5, 0, 1)
    dx = (xx % period) - period / 2 + 0.5
    dy = (yy % period) - period / 2 + 0.5
    dots = (np.hypot(dx, dy) < (0.12 + 0.3 * t) * period).astype(np.float32)
    canvas = _mix(canvas, col * 0.4, (dots * fill)[..., None])
    canvas += 0.1 * _smooth_noise(rng, side, 6)[..., None]
    small = np.asarray(to_image(np.clip(canvas, 0, 1), size), dtype=np.float32) / 255.0
    small += rng.normal(0.0, 0.045, size=small.shape).astype(np.float32)
    q = np.round(np.clip(small, 0, 1) * (levels - 1)) / (levels - 1)
    return Image.fromarray((q * 255 + 0.5).astype(np.uint8), "RGB")


_RENDERERS = {"plain": render_plain, "ink": render_ink, "pop": render_pop, "poster": render_poster}


def render_styled(scene: Scene, size: int = 64, style: str = "plain") -> Image.Image:
    """Render ``scene`` in ``style`` (one of :data:`STYLE_CLASSES`)."""
    try:
        renderer = _RENDERERS[style]
    except KeyError:
        raise ValueError(f"unknown style {style!r}; choose from {STYLE_CLASSES}") from None
    return renderer(scene, size)
