"""The embedded procedural world and its styles: determinism, captions, split, distinctness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adaptkit.embedded.styles import STYLE_CLASSES, STYLES, render_styled
from adaptkit.embedded.world import (
    BACKGROUNDS,
    COLOURS,
    EVAL_SEED_OFFSET,
    SHAPES,
    caption_vocabulary,
    combos,
    is_heldout,
    render_scene,
    sample_scene,
    scene_caption,
    scene_for_seed,
)


def _arr(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


@pytest.mark.parametrize("style", STYLE_CLASSES)
def test_same_seed_gives_identical_pixels(style: str) -> None:
    a = render_scene(scene_for_seed(123), 64, style)
    b = render_scene(scene_for_seed(123), 64, style)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c = render_scene(scene_for_seed(124), 64, style)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_sample_scene_is_seeded() -> None:
    s1 = [sample_scene(np.random.default_rng(5)) for _ in range(3)]
    s2 = [sample_scene(np.random.default_rng(5)) for _ in range(3)]
    assert s1 == s2


def test_world_has_required_variety() -> None:
    assert set(SHAPES) >= {"circle", "square", "triangle", "star"}
    assert len(COLOURS) >= 6
    assert len(BACKGROUNDS) >= 3
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, "any") for _ in range(500)]
    assert {s.shape for s in scenes} == set(SHAPES)
    assert {s.colour for s in scenes} == set(COLOURS)
    assert {s.size for s in scenes} == {"small", "large"}
    xs = [s.cx for s in scenes]
    assert max(xs) - min(xs) > 0.3  # positions vary


def test_captions_are_plain_content_words() -> None:
    rng = np.random.default_rng(1)
    vocab = set(caption_vocabulary())
    style_words = set(STYLE_CLASSES) | {"style", "cartoon", "hatching", "halftone", "outline"}
    for _ in range(200):
        scene = sample_scene(rng, "any")
        words = scene_caption(scene).split()
        assert set(words) <= vocab
        assert not set(words) & style_words
        assert scene.shape in words and scene.colour in words and scene.background in words
    s = scene_for_seed(7)
    assert scene_caption(s) == f"a {s.size} {s.colour} {s.shape} on a {s.background} background"


def test_heldout_split_is_disjoint_and_recombines_seen_pairs() -> None:
    train, held = combos("train"), combos("eval")
    assert len(train) == 60 and len(held) == 12
    assert not set(train) & set(held)
    assert all(is_heldout(*t) for t in held)
    train_pairs = {(s, c) for s, c, _ in train}
    assert train_pairs == set(itertools.product(SHAPES, COLOURS))
    rng = np.random.default_rng(2)
    for _ in range(300):
        s = sample_scene(rng, "train")
        assert not is_heldout(s.shape, s.colour, s.background)
    ev = scene_for_seed(EVAL_SEED_OFFSET + 1, "eval")
    assert is_heldout(ev.shape, ev.colour, ev.background)


def test_styles_are_distinct_and_keep_hue() -> None:
    rng = np.random.default_rng(3)
    for _ in range(8):
        scene = sample_scene(rng, "any", background="gray")
        plain = _arr(render_scene(scene, 64))
        rendered = {st: _arr(render_styled(scene, 64, st)) for st in STYLES}
        for a, b in itertools.combinations([plain, *rendered.values()], 2):
            assert np.abs(a - b).mean() > 4.0  # every pair of styles differs visibly
        # hue kept: the dominant channel at the shape centre matches the plain render
        cx, cy = int(scene.cx * 64), int(scene.cy * 64)
        if scene.shape == "star":
            continue
        ref = plain[cy - 2 : cy + 3, cx - 2 : cx + 3].mean((0, 1))
        for st, img in rendered.items():
            got = img[cy - 2 : cy + 3, cx - 2 : cx + 3].mean((0, 1))
            assert np.argmax(got) == np.argmax(ref), (st, scene.colour, got, ref)


def test_ink_is_textured_and_poster_is_posterised() -> None:
    scene = sample_scene(np.random.default_rng(4), "any", background="white", size="large")
    poster = np.asarray(render_styled(scene, 64, "poster"))
    assert len(np.unique(poster)) <= 4  # 4 levels per channel
    plain = np.asarray(render_scene(scene, 64))
    ink = np.asarray(render_styled(scene, 64, "ink")).astype(np.float32)
    assert ink.std() > 0 and len(np.unique(ink.reshape(-1, 3), axis=0)) > 3 * len(
        np.unique(plain.reshape(-1, 3), axis=0)
    )
