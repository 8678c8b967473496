"""Evaluation prompt sets and the held-out ``eval`` split that training never sees."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import tomllib

from adaptkit.data.holdout import held_out_keys, key_score
from adaptkit.data.loading import build_adapter
from adaptkit.errors import UserError
from adaptkit.evaluation.prompts import (
    CATEGORIES,
    REPORT_PROMPTS,
    general_prompts,
    in_style_prompts,
    prompt_set,
    report_prompts,
)
from adaptkit.testing.datasets import write_naruto, write_newyorker

from dataset_helpers import _isolated_cache  # noqa: F401  (autouse: private datasets cache)

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- shipped sets


def test_report_prompts_are_the_original_reports_four():
    """The same four as the shipped reference recipe (which copies the original report's)."""
    shipped = tomllib.loads((REPO / "recipes" / "naruto-full.toml").read_text())["sample"]["prompts"]
    assert list(REPORT_PROMPTS) == shipped and len(REPORT_PROMPTS) == 4
    report = report_prompts()
    assert report.name == "report" and report.prompts == shipped and "original report" in report.source


def test_general_set_has_at_least_100_distinct_prompts_in_six_categories_and_names_its_source():
    general = general_prompts()
    assert len(general) >= 100 and len(set(general.prompts)) == len(general)
    counts = Counter(general.categories)
    assert set(counts) == set(CATEGORIES) and min(counts.values()) >= 15
    assert "DrawBench" in general.source and "PartiPrompts" in general.source
    assert general_prompts(["text"]).categories == ["text"] * counts["text"]


def test_limit_spreads_over_every_category():
    few = general_prompts().limit(12)
    assert len(few) == 12 and Counter(few.categories) == {c: 2 for c in CATEGORIES}
    assert prompt_set("general", count=12) == few


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="unknown category 'colors'.*valid: objects"):
        general_prompts(["colors"])
    with pytest.raises(UserError, match="unknown prompt set 'style'.*in-style, report, general"):
        prompt_set("style")


# --------------------------------------------------------------------------- held-out split


def test_held_out_keys_are_deterministic_and_never_empty():
    keys = [str(i) for i in range(400)]
    held = held_out_keys(keys, 0.1)
    assert held == held_out_keys(list(reversed(keys)), 0.1)  # order does not matter
    assert 20 <= len(held) <= 60
    assert held <= held_out_keys(keys + ["more", "keys"], 0.1) | {"more", "keys"}  # stable as data grows
    assert held_out_keys(["a", "b"], 0.01) == {min(["a", "b"], key=key_score)}
    assert held_out_keys(keys, 0.0) == set()


def _keys(dataset) -> list[str]:
    return [dataset[i].key for i in range(len(dataset))]


def test_newyorker_eval_split_is_by_contest_and_disjoint_from_train(tmp_path: Path):
    local = write_newyorker(tmp_path / "ny", contests=20, rows_per_contest=2)
    adapter = build_adapter("newyorker", {"source": str(local.path), "eval_fraction": 0.25}, source="t.toml")
    train, held = adapter.load("train"), adapter.load("eval")
    everything = build_adapter("newyorker", {"source": str(local.path)}, source="t.toml").load()
    assert len(everything) == 20 and len(train) + len(held) == 20 and len(held) >= 1
    assert set(_keys(train)).isdisjoint(_keys(held))
    assert set(_keys(train)) | set(_keys(held)) == set(_keys(everything))
    assert all(key.isdigit() for key in _keys(held))  # keys are contest numbers
    assert _keys(held) == _keys(adapter.load("eval"))  # deterministic
    prompts = in_style_prompts(adapter)
    assert prompts.name == "in-style" and len(prompts) == len(held)
    for key, prompt in zip(_keys(held), prompts.prompts):
        assert prompt == f"A man at a desk talks to a penguin, cartoon {key}."


def test_without_eval_fraction_nothing_is_held_out_and_eval_is_a_user_error(tmp_path: Path):
    local = write_naruto(tmp_path / "naruto", rows=6)
    adapter = build_adapter("naruto", {"source": str(local.path)}, source="t.toml")
    assert len(adapter.load()) == 6
    with pytest.raises(UserError, match=r"data.options.eval_fraction: is 0"):
        adapter.load("eval")
    with pytest.raises(UserError, match="eval_fraction"):
        build_adapter("naruto", {"source": str(local.path), "eval_fraction": 1.0}, source="t.toml")


def test_training_never_sees_the_held_out_images(tmp_path: Path, tiny_model_dir: Path):
    from training_helpers import make_trainer, write_recipe

    local = write_naruto(tmp_path / "naruto", rows=10)
    options = {"source": str(local.path), "eval_fraction": 0.3}
    held = set(_keys(build_adapter("naruto", options, source="t.toml").load("eval")))
    assert held
    recipe = write_recipe(tmp_path, tiny_model_dir, local.path, data={"options": options})
    trainer = make_trainer(recipe)
    try:
        trained = {trainer.examples[i].key for i in range(len(trainer.examples))}
    finally:
        trainer.cleanup()
    assert len(trained) == 10 - len(held) and trained.isdisjoint(held)


def test_embedded_styles_in_style_prompts_come_from_held_out_scenes():
    from adaptkit.embedded.world import is_heldout

    adapter = build_adapter("embedded-styles", {"style": "ink", "count": 6}, source="t.toml")
    prompts = in_style_prompts(adapter)
    assert len(prompts) == 6
    held = adapter.load("eval")
    assert all(is_heldout(e.meta["shape"], e.meta["colour"], e.meta["background"]) for e in held)
