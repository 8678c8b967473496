"""What works for SD 1.x works for SDXL: every method (and the plugins' lokr/oft) with EMA, gradient
checkpointing and caching; every sampler through ``StableDiffusionXLPipeline``; paired evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from adaptkit.testing.datasets import write_naruto
from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

from training_helpers import run, write_recipe


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("data") / "naruto", rows=4).path


@pytest.mark.parametrize(
    "method, options",
    [("full", {"train_text_encoder": True}), ("lora", {"text_encoder": True, "conv": True}), ("loha", {}),
     ("lokr", {}), ("oft", {})],
)  # fmt: skip
def test_every_method_trains_sdxl_with_ema_and_checkpointing(tmp_path, sdxl_dir, data_dir, method, options) -> None:
    recipe = write_recipe(
        tmp_path,
        sdxl_dir,
        data_dir,
        method,
        method={"options": options},
        train={"steps": 3, "gradient_checkpointing": True},
        ema={"enabled": True, "decay": 0.5},
        checkpoint={"every": 2},
    )
    trainer, result = run(recipe)
    assert math.isfinite(result.final_loss) and result.steps == 3
    run_dir = tmp_path / "runs" / "run"
    assert (run_dir / "samples").is_dir() and any((run_dir / "adapter").iterdir())
    trained = {name for name, _ in trainer.method.trainable_state_dict(trainer.components).items()}
    if options.get("text_encoder") or options.get("train_text_encoder"):
        assert any(n.startswith("text_encoder_2.") for n in trained) and any(
            n.startswith("text_encoder.") for n in trained
        )


@pytest.mark.parametrize("sampler", ["ddim", "pndm", "dpm-solver"])
def test_every_sampler_draws_through_the_sdxl_pipeline(sdxl_dir, sampler) -> None:
    from diffusers import StableDiffusionXLPipeline

    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.sampling.generate import GenerationSettings, generate_images
    from adaptkit.sampling.pipeline import load_pipeline

    registries = get_plugin_manager().collect()
    pipeline = load_pipeline(ModelSection(base=str(sdxl_dir)), registries.samplers.get(sampler).cls(), registries)
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    settings = GenerationSettings(steps=3, guidance=3.0, resolution=32, negative_prompt="blurry")
    images = generate_images(pipeline, ["a ninja", "a boy"], [0, 0], settings, "np")
    assert np.stack(images).shape == (2, 32, 32, 3) and np.isfinite(np.stack(images)).all()
    assert not np.allclose(images[0], images[1])  # the prompt reaches the image


def test_paired_evaluation_runs_on_sdxl(tmp_path, sdxl_dir, data_dir, monkeypatch) -> None:
    from adaptkit.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the metrics' models are absent here: fail fast, not after retries

    recipe = write_recipe(tmp_path, sdxl_dir, data_dir, "lora", train={"steps": 2}, sample={"prompts": []})
    run(recipe)
    run_dir = tmp_path / "runs" / "run"
    assert main(["eval", str(run_dir), "--set", "eval.prompts=2", "--set", "eval.seeds_per_prompt=1"]) == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert len(metrics["pairs"]) >= 2
    adapted = sorted((run_dir / "eval" / "images").glob("adapted-*.png"))
    base = sorted((run_dir / "eval" / "images").glob("base-*.png"))
    assert adapted and len(adapted) == len(base)


#: The tiny SDXL's attention blocks in the original (SGM) layout sd-scripts names them by: one ResNet
#: per level, so down level 1's attention is input block 1·2 + 0 + 1 = 3, up level 0's are output blocks 0, 1.
SGM_NAMES = {
    "down_blocks_1_attentions_0": "input_blocks_3_1",
    "mid_block_attentions_0": "middle_block_1",
    "up_blocks_0_attentions_0": "output_blocks_0_1",
    "up_blocks_0_attentions_1": "output_blocks_1_1",
}


def test_an_sd_scripts_sdxl_lora_with_original_layout_names_imports(tmp_path, sdxl_dir, data_dir) -> None:
    """A kohya file whose UNet keys use the original layout (as sd-scripts writes SDXL LoRAs) imports
    to the same adapter, and diffusers' own loader agrees with it."""
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import load_file, save_file

    from adaptkit.interop.export import export_run
    from adaptkit.interop.importer import import_file
    from adaptkit.recipe import ModelSection
    from adaptkit.testing.family_runs import adaptkit_images, diffusers_images

    recipe = write_recipe(tmp_path, sdxl_dir, data_dir, "lora", method={"options": {"init_weights": "gaussian"}})
    run(recipe)
    run_dir = tmp_path / "runs" / "run"
    state = load_file(str(export_run(run_dir, "kohya")))
    renamed = {}
    for key, value in state.items():
        for diffusers, original in SGM_NAMES.items():
            key = key.replace(f"lora_unet_{diffusers}_", f"lora_unet_{original}_")
        renamed[key] = value
    assert sum(k.startswith("lora_unet_input_blocks_3_1_") for k in renamed) > 0
    assert not any(k.startswith("lora_unet_down_blocks_1_attentions") for k in renamed)
    sgm = tmp_path / "sd-scripts-sdxl.safetensors"
    save_file(renamed, str(sgm))
    imported, found = import_file(sgm, ModelSection(base=str(sdxl_dir)), tmp_path / "imported")
    ours = adaptkit_images(sdxl_dir, run_dir)
    assert (adaptkit_images(sdxl_dir, imported) - ours).abs().max() <= 1e-5
    assert (diffusers_images(StableDiffusionXLPipeline, sdxl_dir, sgm) - ours).abs().max() <= 1e-4
