"""The model card: written after training (adapter/README.md) and with every export; its YAML parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from adaptkit.interop.export import export_run
from adaptkit.interop.model_card import base_license
from adaptkit.testing.datasets import write_naruto

from training_helpers import run, write_recipe


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("card")
    data = write_naruto(folder / "naruto", rows=4).path
    recipe = write_recipe(folder, tiny_model_dir, data, "lora", train={"steps": 2}, sample={"steps": 1})
    run(recipe)
    return folder / "runs" / "run"


def test_training_writes_a_model_card_with_metadata_samples_figures_and_recipe(run_dir, tiny_model_dir) -> None:
    card = (run_dir / "adapter" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == str(tiny_model_dir)
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "text-to-image"
    assert {"adaptkit", "lora", "stable-diffusion"} <= set(meta["tags"])
    assert "license" not in meta and "datasets" not in meta  # a local model and a local dataset: unknown
    assert "![samples-before-after](images/samples-before-after.png)" in card
    assert (run_dir / "adapter" / "images" / "samples-before-after.png").is_file()
    assert "| steps | 2 |" in card and "| final loss |" in card
    assert '[method]\nname = "lora"' in card  # the resolved recipe
    assert "pipe.load_lora_weights" in card


def test_evaluation_figures_and_the_export_card(run_dir, tmp_path) -> None:
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "metrics.json").write_text(json.dumps({"clip_score": {"base": 0.25, "adapted": 0.3125}}))
    path = export_run(run_dir, "kohya", tmp_path / "style.safetensors")
    card = (tmp_path / "style.md").read_text()
    assert front_matter(card)["tags"][0] == "adaptkit"
    assert "## Evaluation" in card and "| clip_score.adapted | 0.3125 |" in card
    assert path.is_file() and (tmp_path / "images" / "samples-before-after.png").is_file()
    folder = export_run(run_dir, "diffusers", tmp_path / "folder")
    assert front_matter((folder / "README.md").read_text())["library_name"] == "diffusers"


def test_base_license(tmp_path) -> None:
    assert base_license("CompVis/stable-diffusion-v1-4") == "creativeml-openrail-m"
    assert base_license("embedded:tiny-sd") == "apache-2.0"
    assert base_license("someone/unknown-model") is None
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# a local copy\n")
    assert base_license(str(tmp_path)) == "mit"


def test_hub_dataset_ids_come_from_the_adapter(run_dir) -> None:
    from adaptkit.interop.metadata import read_run
    from adaptkit.interop.model_card import dataset_ids

    info = read_run(run_dir)
    assert dataset_ids(info) == []  # local source
    hub = info.recipe.model_copy(update={"data": info.recipe.data.model_copy(update={"options": {}})})
    assert dataset_ids(type(info)(info.run_dir, hub, info.steps, info.recipe_hash)) == [
        "lambdalabs/naruto-blip-captions"
    ]
