"""The reference recipes' evaluation path end to end, offline: the shipped recipe file through ``adaptkit run``.

Only what cannot work offline or on a CPU is overridden (base model, dataset source, resolution, steps,
precision/optimizer, encoder models, sizes); ``eval_fraction``, ``[eval] metrics`` and ``prompt_sets``
come from the recipe itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import tomllib

from adaptkit.cli import main
from adaptkit.data.loading import build_adapter
from adaptkit.testing.datasets import (
    LocalDataset,
    isolated_datasets,
    write_naruto,
    write_newyorker,
    write_pokemon,
    write_simpsons,
)
from adaptkit.testing.tiny_encoders import save_tiny_clip, save_tiny_dino

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SETS = ["in-style", "report", "general"]
#: Local copies in the Hub schema, large enough that eval_fraction = 0.05 holds out at least 2 images (KID/CMMD).
WRITERS: dict[str, Callable[[Path], LocalDataset]] = {
    "newyorker-lora": lambda root: write_newyorker(root, contests=12, rows_per_contest=1),
    "pokemon-loha": lambda root: write_pokemon(root, rows=60),
    "naruto-full": lambda root: write_naruto(root, rows=60),
    "simpsons-lora": lambda root: write_simpsons(root, rows=60),
}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "clip": str(save_tiny_clip(tmp_path_factory.mktemp("clip"))),
        "dino": str(save_tiny_dino(tmp_path_factory.mktemp("dino"))),
    }


def offline_overrides(tmp_path: Path, model_dir: Path, source: Path, encoders: dict[str, str]) -> list[str]:
    sets = [
        f"run.output_dir={tmp_path / 'runs'}",
        f"model.base={model_dir}",
        f"data.options.source={source}",
        "data.resolution=64",
        "train.steps=2",
        "train.batch_size=2",
        "train.lr_warmup_steps=0",
        "train.optimizer=adamw",
        "train.mixed_precision=no",
        "sample.prompts=[]",
        "sample.steps=2",
        "eval.prompts=2",
        "eval.seeds_per_prompt=1",
        "eval.batch_size=6",
        "eval.content.model=" + encoders["dino"],
    ]
    for metric in ("style", "clip_score", "kid", "cmmd"):
        sets.append(f"eval.{metric}.model={encoders['clip']}")
    for metric in ("style", "clip_score", "content", "kid", "cmmd"):
        sets.append(f"eval.{metric}.n_resamples=20")
    return sets


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_reference_recipe_evaluates_end_to_end(
    name: str, tmp_path: Path, tiny_model_dir: Path, encoders: dict[str, str]
) -> None:
    recipe_path = RECIPES / f"{name}.toml"
    recipe = tomllib.loads(recipe_path.read_text(encoding="utf-8"))
    assert recipe["data"]["options"]["eval_fraction"] == 0.05
    metrics = recipe["eval"]["metrics"]
    assert sorted(metrics) == sorted(["style", "clip_score", "content", "kid", "cmmd"])
    assert recipe["eval"]["prompt_sets"] == SETS

    local = WRITERS[name](tmp_path / "data")
    overrides = offline_overrides(tmp_path, tiny_model_dir, local.path, encoders)
    with isolated_datasets(tmp_path / "hf-cache"):
        options = {**recipe["data"]["options"], "source": str(local.path)}
        adapter = build_adapter(recipe["data"]["adapter"], options, source=str(recipe_path))
        train, held_out = adapter.load("train"), adapter.load("eval")
        train_captions = {c for i in range(len(train)) for c in train[i].captions}
        held_out_captions = [held_out[i].captions[0] for i in range(len(held_out))]
        assert len(held_out) >= 2 and len(train) > len(held_out)

        argv = ["run", str(recipe_path)]
        for override in overrides:
            argv += ["--set", override]
        assert main(argv) == 0

    out = tmp_path / "runs" / name / "eval"
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved["unavailable"] == {}
    for metric in metrics:
        figures = [f for f in saved["figures"] if f["metric"] == metric]
        assert figures, f"no figure for {metric}"
        for figure in figures:
            value, low, high = figure["value"], figure["ci_low"], figure["ci_high"]
            assert all(math.isfinite(x) for x in (value, low, high)), figure
            assert low <= value <= high, figure

    pairs = saved["pairs"]
    assert {p["set"] for p in pairs} == set(SETS)
    in_style = [p["prompt"] for p in pairs if p["set"] == "in-style"]
    assert len(in_style) == 2
    assert set(in_style) <= set(held_out_captions)
    assert not set(in_style) & train_captions  # training never saw these captions' images

    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= len(pairs)
