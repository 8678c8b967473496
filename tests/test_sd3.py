"""SD 3.x: the conditioning equals ``StableDiffusion3Pipeline.encode_prompt`` with T5 and without it
(``model.text_encoder_3 = "none"``); a text-encoder LoRA adapts the two CLIP encoders, as diffusers'."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.models import load_base_model
from adaptkit.recipe import ModelSection
from adaptkit.testing.datasets import write_naruto
from adaptkit.testing.tiny_sd3 import save_tiny_sd3_pipeline
from adaptkit.training.batches import tokenize_all

from training_helpers import run, write_recipe


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd3_pipeline(tmp_path_factory.mktemp("sd3") / "tiny-sd3")


@pytest.mark.parametrize("text_encoder_3", [None, "none"])
def test_conditioning_is_what_the_pipeline_encodes(sd3_dir, text_encoder_3) -> None:
    components = load_base_model(ModelSection(base=str(sd3_dir), text_encoder_3=text_encoder_3))
    assert len(components.text_encoders()) == (3 if text_encoder_3 is None else 2)
    pipeline = components.pipeline(components.noise_scheduler)
    prompt = "a ninja boy riding a dragon"
    with torch.no_grad():
        embeds, _, pooled, _ = pipeline.encode_prompt(prompt, None, None, do_classifier_free_guidance=False)
        ids = tokenize_all(components.tokenizers(), [prompt])
        ours = components.family.condition(list(components.text_encoders().values()), ids)
    assert ours.hidden_states.shape == (1, 77 + 256, 64)  # CLIP tokens, then T5's 256 (states or zeros)
    torch.testing.assert_close(ours.hidden_states, embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.added["pooled_projections"], pooled, atol=0, rtol=0)
    if text_encoder_3 == "none":
        assert ours.hidden_states[0, 77:].abs().max() == 0


def test_a_text_encoder_lora_adapts_both_clip_encoders_and_not_t5(tmp_path, sd3_dir) -> None:
    data = write_naruto(tmp_path / "naruto", rows=4).path
    recipe = write_recipe(
        tmp_path,
        sd3_dir,
        data,
        "lora",
        method={"options": {"text_encoder": True}},
        train={"steps": 2},
        sample={"sampler": "flow-euler"},
    )
    trainer, result = run(recipe)
    parts = {name.split(".")[0] for name in trainer.method.trainable_state_dict(trainer.components)}
    assert parts == {"transformer", "text_encoder", "text_encoder_2"} and result.steps == 2


def test_dpm_solver_drives_sd3_with_flow_sigmas_and_agrees_with_flow_euler(sd3_dir) -> None:
    """Both samplers solve the same flow ODE: at 20 steps their images agree to a few hundredths."""
    import numpy as np

    from adaptkit.plugins import get_plugin_manager
    from adaptkit.sampling.generate import GenerationSettings, generate_images
    from adaptkit.sampling.pipeline import load_pipeline

    registries = get_plugin_manager().collect()
    images = {}
    for name in ("flow-euler", "dpm-solver"):
        pipeline = load_pipeline(ModelSection(base=str(sd3_dir)), registries.samplers.get(name).cls(), registries)
        settings = GenerationSettings(steps=20, guidance=3.0, resolution=32)
        images[name] = np.stack(generate_images(pipeline, ["a ninja"], [0], settings, "np"))
    assert pipeline.scheduler.config.use_flow_sigmas and pipeline.scheduler.config.prediction_type == "flow_prediction"
    assert np.abs(images["flow-euler"] - images["dpm-solver"]).max() < 0.05
