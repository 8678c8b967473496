"""Recipes and runs on the tiny model, shared by the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptkit.recipe.dump import dump_toml
from adaptkit.resolve import load_and_resolve
from adaptkit.training.trainer import Trainer


def write_recipe(
    folder: Path,
    model_dir: Path,
    data_dir: Path | None,
    method_name: str = "lora",
    name: str = "run",
    **sections: dict[str, Any],
) -> Path:
    """A small recipe (32 px, batch 2) on the tiny model and a local naruto-schema dataset (``data_dir``)."""
    data: dict[str, Any] = {
        "run": {"name": name, "output_dir": str(folder / "runs")},
        "model": {"base": str(model_dir)},
        "data": {"adapter": "naruto", "resolution": 32, "options": {"source": str(data_dir)} if data_dir else {}},
        "method": {"name": method_name, "options": {}},
        "train": {"steps": 4, "batch_size": 2, "learning_rate": 1e-3, "log_every": 1, "seed": 3},
        "sample": {"sampler": "ddim", "steps": 2, "guidance": 2.0, "prompts": ["a ninja"], "seeds": [0]},
    }
    for section, values in sections.items():
        merged = dict(data.get(section, {}))
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        data[section] = merged
    path = folder / f"{name}.toml"
    path.write_text(dump_toml(data))
    return path


def make_trainer(recipe: Path, **kwargs: Any) -> Trainer:
    trainer = Trainer(load_and_resolve(recipe), show_progress=False, **kwargs)
    trainer.setup()
    return trainer


def run(recipe: Path, **kwargs: Any) -> tuple[Trainer, dict[str, Any]]:
    trainer = make_trainer(recipe, **kwargs)
    try:
        return trainer, trainer.train()
    finally:
        trainer.cleanup()
