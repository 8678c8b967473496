"""A procedural, deterministic base world of simple coloured shapes.

Every sample is a :class:`Scene` with exact ground truth (shape, colour,
background, size, position, rotation) and a plain-words caption such as
``"a large red triangle on a white background"``.  Rendering is a pure
function of the scene, so the same scene always gives identical pixels.

Held-out split
--------------
A ``(shape, colour, background)`` triple is *held out* (reserved for
evaluation prompts) when ``(shape_idx + colour_idx + background_idx) % 6 == 0``
(indices into :data:`SHAPES`, :data:`COLOURS`, :data:`BACKGROUNDS`).  That
reserves 12 of the 72 triples; every ``(shape, colour)`` pair still occurs in
training with another background, so held-out prompts test recombination,
not new words.  Evaluation additionally uses scene seeds from
:data:`EVAL_SEED_OFFSET` upwards (training uses seeds below it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUNDS: tuple[str, ...] = ("white", "black", "gray")
SIZES: tuple[str, ...] = ("small", "large")

#: Object colours (RGB, 0-255).
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 135, 30),
}
#: Background colours (RGB, 0-255).
BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
#: Radius of the shape's circumscribed circle as a fraction of the image side.
SIZE_RADIUS: dict[str, float] = {"small": 0.19, "large": 0.31}

#: Scene seeds at or above this value are reserved for evaluation.
EVAL_SEED_OFFSET: int = 1_000_000_000
#: Supersampling factor used for anti-aliased rendering.
SUPERSAMPLE: int = 4

Split = Literal["train", "eval", "any"]


@dataclass(frozen=True)
class Scene:
    """Ground truth of one image of the base world."""

    shape: str
    colour: str
    background: str
    size: str
    cx: float  # centre x as a fraction of the image side
    cy: float  # centre y as a fraction of the image side
    scale: float  # multiplicative jitter of the size radius (~0.9-1.1)
    rotation: float  # degrees
    seed: int  # seed of any texture a style draws

    @property
    def radius(self) -> float:
        """Circumscribed radius as a fraction of the image side."""
        return SIZE_RADIUS[self.size] * self.scale


def is_heldout(shape: str, colour: str, background: str) -> bool:
    """Whether a ``(shape, colour, background)`` triple is reserved for evaluation."""
    total = SHAPES.index(shape) + COLOURS.index(colour) + BACKGROUNDS.index(background)
    return total % 6 == 0


def combos(split: Split = "any") -> list[tuple[str, str, str]]:
    """All ``(shape, colour, background)`` triples in ``split``."""
    out = []
    for s in SHAPES:
        for c in COLOURS:
            for b in BACKGROUNDS:
                held = is_heldout(s, c, b)
                if split == "any" or (split == "eval") == held:
                    out.append((s, c, b))
    return out


def sample_scene(
    rng: np.random.Generator,
    split: Split = "train",
    shape: str | None = None,
    colour: str | None = None,
    background: str | None = None,
    size: str | None = None,
) -> Scene:
    """Draw a random scene from ``split``; fixed attributes may be given.

    Content is drawn uniformly from the split's triples that match the fixed
    attributes; position, jitter, rotation and texture seed are random.
    """
    cands = [
        t
        for t in combos(split)
        if (shape is None or t[0] == shape)
        and (colour is None or t[1] == colour)
        and (background is None or t[2] == background)
    ]
    if not cands:
        raise ValueError(f"no {split} combination matches {shape}/{colour}/{background}")
    s, c, b = cands[int(rng.integers(len(cands)))]
    sz = size if size is not None else SIZES[int(rng.integers(len(SIZES)))]
    scale = float(rng.uniform(0.9, 1.1))
    r = SIZE_RADIUS[sz] * scale
    margin = r + 0.04
    cx, cy = (float(v) for v in rng.uniform(margin, 1.0 - margin, size=2))
    rotation = float(rng.uniform(-15.0, 15.0))
    seed = int(rng.integers(0, 2**31 - 1))
    return Scene(s, c, b, sz, cx, cy, scale, rotation, seed)


def scene_for_seed(seed: int, split: Split = "train") -> Scene:
    """Deterministic scene for an integer seed (eval seeds live above the offset)."""
    return sample_scene(np.random.default_rng(seed), split)


def scene_caption(scene: Scene) -> str:
    """Plain-words content caption, e.g. ``"a large red star on a black background"``."""
    return caption_for(scene.shape, scene.colour, scene.background, scene.size)


def caption_for(shape: str, colour: str, background: str, size: str | None = None) -> str:
    """Caption for given attributes (``size`` may be omitted)."""
    sz = f"{size} " if size else ""
    return f"a {sz}{colour} {shape} on a {background} background"


def caption_vocabulary() -> list[str]:
    """Every word that can appear in a caption."""
    words = {"a", "on", "background", *SHAPES, *COLOURS, *BACKGROUNDS, *SIZES}
    return sorted(words)


def shape_points(scene: Scene, side: float) -> list[tuple[float, float]]:
    """Polygon vertices (pixels, canvas of ``side``) of a non-circle shape."""
    cx, cy, r = scene.cx * side, scene.cy * side, scene.radius * side
    rot = math.radians(scene.rotation)
    if scene.shape == "square":
        angles = [math.pi / 4 + k * math.pi / 2 for k in range(4)]
        radii = [r * 0.95] * 4
    elif scene.shape == "triangle":
        angles = [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        radii = [r * 1.05] * 3
        cy += r * 0.15  # centre the triangle's bounding box
    elif scene.shape == "star":
        angles = [-math.pi / 2 + k * math.pi / 5 for k in range(10)]
        radii = [r * 1.08 if k % 2 == 0 else r * 0.46 for k in range(10)]
    else:
        raise ValueError(f"shape_points does not handle {scene.shape!r}")
    return [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for a, rr in zip(angles, radii)]


def draw_shape(
    draw: ImageDraw.ImageDraw,
    scene: Scene,
    side: float,
    fill: int | tuple[int, ...] | None,
    outline: int | tuple[int, ...] | None = None,
    width: int = 0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Draw the scene's shape on ``draw`` (a canvas of ``side`` pixels)."""
    dx, dy = offset
    if scene.shape == "circle":
        cx, cy, r = scene.cx * side + dx, scene.cy * side + dy, scene.radius * side * 0.9
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=outline, width=width)
    else:
        pts = [(x + dx, y + dy) for x, y in shape_points(scene, side)]
        draw.polygon(pts, fill=fill, outline=outline, width=width)


def shape_mask(scene: Scene, side: int, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Binary fill mask (float32, ``side``×``side``) of the shape."""
    img = Image.new("L", (side, side), 0)
    draw_shape(ImageDraw.Draw(img), scene, side, fill=255, offset=offset)
    return np.asarray(img, dtype=np.float32) / 255.0


def outline_mask(scene: Scene, side: int, outer: int, inner: int = 0) -> np.ndarray:
    """Mask (float32) of a stroke along the shape's edge.

    The stroke reaches ``outer`` pixels outside and ``inner`` pixels inside the
    edge, so thick outlines do not eat small shapes.
    """
    img = Image.new("L", (side, side), 0)
    draw_shape(ImageDraw.Draw(img), scene, side, fill=255)
    grown = img.filter(ImageFilter.MaxFilter(2 * outer + 1)) if outer > 0 else img
    shrunk = img.filter(ImageFilter.MinFilter(2 * inner + 1)) if inner > 0 else img
    ring = np.asarray(grown, dtype=np.float32) - np.asarray(shrunk, dtype=np.float32)
    return np.clip(ring / 255.0, 0.0, 1.0)


def to_image(canvas: np.ndarray, size: int) -> Image.Image:
    """Downsample a float RGB canvas in [0, 1] to an RGB image of ``size``."""
    arr = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BOX)
    return img


def rgb01(rgb: tuple[int, int, int]) -> np.ndarray:
    """RGB tuple (0-255) as a float32 array in [0, 1]."""
    return np.asarray(rgb, dtype=np.float32) / 255.0


def render_plain(scene: Scene, size: int = 64) -> Image.Image:
    """Render the unstyled ("plain") base-world image."""
    side = size * SUPERSAMPLE
    m = shape_mask(scene, side)[..., None]
    canvas = (1 - m) * rgb01(BACKGROUND_RGB[scene.background]) + m * rgb01(COLOUR_RGB[scene.colour])
    return to_image(canvas, size)


def render_scene(scene: Scene, size: int = 64, style: str | None = None) -> Image.Image:
    """Render ``scene`` as an RGB image, optionally in a named style.

    ``style`` is ``None`` or ``"plain"`` for the base world, or one of
    :data:`adaptkit.embedded.styles.STYLES`.
    """
    if style is None or style == "plain":
        return render_plain(scene, size)
    from adaptkit.embedded.styles import render_styled

    return render_styled(scene, size, style)
