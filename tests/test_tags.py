"""Tag rules for tag-style captions: shuffle after keep_tokens, per-tag dropout, deterministic per
step, and the text cache refused or off since the caption changes every step."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from adaptkit.data.tags import apply_tag_rules
from adaptkit.errors import UserError
from adaptkit.recipe import DataSection
from adaptkit.training.cache import cache_settings

CAPTION = "sks, red hair, smiling, outdoors, night, rain"


def test_shuffling_keeps_the_first_tags_in_place_and_every_tag_once() -> None:
    rng = random.Random(0)
    tags = [t.strip() for t in CAPTION.split(",")]
    orders = set()
    for _ in range(200):
        out = apply_tag_rules(CAPTION, rng, keep_tokens=2, shuffle=True, dropout=0.0).split(", ")
        assert out[:2] == tags[:2] and sorted(out) == sorted(tags)
        orders.add(tuple(out[2:]))
    assert len(orders) > 12  # 24 orders of the last four are possible; they do vary


def test_tag_dropout_drops_at_its_rate_and_never_a_kept_tag() -> None:
    rng = random.Random(1)
    draws = [apply_tag_rules(CAPTION, rng, keep_tokens=1, shuffle=False, dropout=0.3).split(", ") for _ in range(4000)]
    assert all(out[0] == "sks" for out in draws)
    dropped = 1 - sum(len(out) - 1 for out in draws) / (5 * len(draws))
    assert dropped == pytest.approx(0.3, abs=0.02)
    assert all(out[1:] == [t for t in CAPTION.split(", ")[1:] if t in out] for out in draws)  # order kept


def test_the_text_cache_is_refused_or_off_with_tag_rules() -> None:
    with pytest.raises(UserError, match=r"data.cache_text = true: data.shuffle_tags / tag_dropout make a new caption"):
        cache_settings(DataSection(adapter="x", shuffle_tags=True, cache_text=True), False, "lora")
    assert not cache_settings(DataSection(adapter="x", tag_dropout=0.1), False, "lora").text
    assert cache_settings(DataSection(adapter="x"), False, "lora").text


def test_each_step_draws_the_same_captions_in_every_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import make_trainer, write_recipe

    data_dir = write_naruto(tmp_path / "naruto", rows=2).path
    data = {"shuffle_tags": True, "keep_tokens": 1, "caption_prefix": "sks,"}
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, data=data, sample={"prompts": []})
    runs = []
    for _ in range(2):
        trainer = make_trainer(recipe)
        try:
            assert trainer.text_cache is None
            runs.append([trainer.training_examples[position]["caption"] for position in range(12)])
        finally:
            trainer.cleanup()
    assert runs[0] == runs[1] and all(caption.startswith("sks, ") for caption in runs[0])
