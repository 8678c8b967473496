"""Built-in samplers: registration, options reaching the scheduler, typos rejected, sampling runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adaptkit.models import load_base_model
from adaptkit.plugins import get_plugin_manager
from adaptkit.recipe import ModelSection
from adaptkit.resolve import build_component

EXPECTED = {"ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "dpm-solver": "DPMSolverMultistepScheduler"}


@pytest.fixture(scope="module")
def samplers():
    return get_plugin_manager().collect().samplers


@pytest.fixture(scope="module")
def components(tiny_model_dir: Path):
    return load_base_model(ModelSection(base=str(tiny_model_dir)))


def make(samplers, name: str, **options):
    errors: list[str] = []
    sampler = build_component(samplers, name, options, "recipe.toml", "sample.sampler", errors)
    assert sampler is not None, errors
    return sampler


def sample(components, scheduler, seed: int = 0) -> np.ndarray:
    pipe = components.pipeline(scheduler)
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        "a photo of a cat", num_inference_steps=2, guidance_scale=2.0, generator=generator, output_type="np"
    ).images


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_from_the_base_scheduler_config(samplers, components, name: str) -> None:
    scheduler = make(samplers, name).build(dict(components.scheduler_config))
    assert isinstance(scheduler, __import__("diffusers").SchedulerMixin)
    assert EXPECTED[name] in [cls.__name__ for cls in type(scheduler).__mro__]
    assert (scheduler.config.beta_schedule, scheduler.config.beta_end) == ("scaled_linear", 0.012)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("dpm-solver", {"solver_order": 3, "use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}),
        ("dpm-solver", {"solver_order": 1, "algorithm_type": "dpmsolver"}),
        ("pndm", {"skip_prk_steps": False}),
        ("ddim", {"eta": 0.5, "timestep_spacing": "trailing"}),
    ],
)
def test_options_reach_the_scheduler_config(samplers, components, name: str, options: dict) -> None:
    scheduler = make(samplers, name, **options).build(dict(components.scheduler_config))
    for key, value in options.items():
        assert scheduler.config[key] == value


def test_defaults(samplers, components) -> None:
    config = dict(components.scheduler_config)
    dpm = make(samplers, "dpm-solver").build(config).config
    assert (dpm.solver_order, dpm.algorithm_type, dpm.use_karras_sigmas) == (2, "dpmsolver++", False)
    assert make(samplers, "pndm").build(config).config.skip_prk_steps is True
    ddim = make(samplers, "ddim").build(config).config
    assert ddim.eta == 0.0 and ddim.timestep_spacing == components.scheduler_config.get("timestep_spacing", "leading")


def test_ddim_eta_is_used_when_sampling(samplers, components) -> None:
    config = dict(components.scheduler_config)
    deterministic = [sample(components, make(samplers, "ddim").build(config), seed=s) for s in (0, 0)]
    assert np.abs(deterministic[0] - deterministic[1]).max() == 0.0
    noisy = sample(components, make(samplers, "ddim", eta=1.0).build(config), seed=0)
    assert np.abs(noisy - deterministic[0]).max() > 1e-4


def test_a_sampler_that_cannot_drive_the_family_is_one_line(tiny_model_dir, tmp_path, capsys) -> None:
    """flow-euler drives flow-matching families only; on SD 1.x the run stops before training."""
    from adaptkit.cli import main
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import write_recipe

    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", sample={"sampler": "flow-euler", "prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert (
        "sample.sampler = 'flow-euler' cannot drive model family sd1 (ddpm objective); "
        "samplers that can: ddim, dpm-solver, pndm" in captured.err
    )
    assert "step 1" not in captured.out
