"""DoRA (``[method.options] use_dora = true``): the magnitude vector trains and is saved, diffusers'
own loader reproduces adaptkit's images, and the kohya export is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.models import load_base_model
from adaptkit.recipe import ModelSection
from adaptkit.testing.family_runs import adaptkit_images, diffusers_images, train, write_family_recipe


@pytest.fixture(scope="module")
def dora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("dora")
    return train(write_family_recipe(folder, tiny_model_dir, "dora", use_dora=True), "train.learning_rate=1e-2")


def test_the_magnitude_trains_and_is_saved(dora_run: Path, tiny_model_dir: Path) -> None:
    saved = load_file(str(dora_run / "adapter" / "pytorch_lora_weights.safetensors"))
    magnitudes = {key: value for key, value in saved.items() if key.endswith(".lora_magnitude_vector")}
    adapted = {key.rsplit(".lora_A", 1)[0] for key in saved if ".lora_A" in key}
    assert {key.rsplit(".lora_magnitude_vector", 1)[0] for key in magnitudes} == adapted and adapted
    unet = load_base_model(ModelSection(base=str(tiny_model_dir))).unet
    moved = 0
    for key, magnitude in magnitudes.items():
        module = key.removeprefix("unet.").rsplit(".lora_magnitude_vector", 1)[0]
        base_norm = unet.get_submodule(module).weight.detach().norm(dim=1)  # DoRA's magnitude at the start
        assert magnitude.shape == base_norm.shape
        moved += not torch.allclose(magnitude, base_norm, atol=1e-6)
    assert moved == len(magnitudes)  # every magnitude trained


def test_diffusers_loads_the_dora_to_adaptkits_images(dora_run: Path, tiny_model_dir: Path) -> None:
    ours = adaptkit_images(tiny_model_dir, dora_run)
    theirs = diffusers_images(StableDiffusionPipeline, tiny_model_dir, dora_run / "adapter")
    assert (ours - theirs).abs().max() <= 1e-4
    assert (ours - diffusers_images(StableDiffusionPipeline, tiny_model_dir)).abs().max() > 1e-3


def test_a_dora_kohya_export_is_one_line_and_peft_export_works(dora_run: Path, capsys) -> None:
    assert main(["export", str(dora_run), "--format", "kohya"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("a DoRA adapter has no kohya layout here; export with --format diffusers or peft")
    )
    assert main(["export", str(dora_run), "--format", "peft"]) == 0
