"""Training end to end on the tiny model: methods x samplers, learning, resume, 8-bit Adam, EMA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import torch

from adaptkit.cli import main
from adaptkit.testing.datasets import write_naruto
from adaptkit.training.batches import derive_seed
from adaptkit.training.objective import diffusion_loss

from training_helpers import make_trainer, run, write_recipe

METHODS = ["full", "lora", "loha"]
SAMPLERS = ["ddim", "pndm", "dpm-solver"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=4).path


def one_step_run(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> Path:
    """Write a one-step LoRA recipe without samples, run it through the CLI and return the recipe."""
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", train={"steps": 1}, sample={"prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 0
    return recipe


def trainable_snapshot(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.method.trainable_state_dict(trainer.components).items()}


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("method", METHODS)
def test_method_sampler_end_to_end(tmp_path, tiny_model_dir, data_dir, method, sampler, capsys) -> None:
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        method,
        train={"steps": 2},
        checkpoint={"every": 1, "keep": 2},
        sample={"sampler": sampler},
    )
    assert main(["run", str(recipe), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "run"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    # resume the finished run for two more steps
    assert main(["run", str(recipe), "--resume", "--set", "train.steps=4", "--no-progress"]) == 0
    assert "resuming from" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"loss", "lr", "images_per_s", "peak_memory_mb"} <= set(rows[-1])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000003", "step-000004"]
    import numpy as np
    from PIL import Image

    before = np.asarray(Image.open(run_dir / "samples" / "step-000000.png"), dtype=float)
    after = np.asarray(Image.open(run_dir / "samples" / "step-000004.png"), dtype=float)
    assert before.shape == after.shape and np.abs(before - after).max() > 0  # adapted != base, same seeds
    assert any((run_dir / "adapter").iterdir())
    out = tmp_path / "sampled.png"
    assert (
        main(
            [
                "sample",
                "--adapter",
                str(run_dir),
                "--sampler",
                sampler,
                "--prompt",
                "a ninja",
                "--steps",
                "2",
                "--resolution",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size[1] == 32


def test_lora_loads_in_diffusers_with_identical_images(tmp_path, tiny_model_dir, data_dir) -> None:
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.sampling.generate import GenerationSettings, generate_images
    from adaptkit.sampling.pipeline import load_pipeline

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        "lora",
        method={"options": {"rank": 4, "alpha": 8}},
        train={"steps": 3},
        sample={"prompts": []},
    )
    run(recipe)
    run_dir = tmp_path / "runs" / "run"
    prompts, seeds = ["a ninja", "a ninja", "a boy", "a boy"], [0, 1, 0, 1]
    settings = GenerationSettings(steps=3, guidance=3.0, resolution=32)

    def generate_arrays(pipeline) -> torch.Tensor:
        return torch.from_numpy(numpy.stack(generate_images(pipeline, prompts, seeds, settings, "np")))

    registries = get_plugin_manager().collect()
    sampler = registries.samplers.get("dpm-solver").cls()
    ours = generate_arrays(load_pipeline(ModelSection(base=str(tiny_model_dir)), sampler, registries, run_dir))

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    base = generate_arrays(pipe)
    pipe.load_lora_weights(run_dir / "adapter")
    theirs = generate_arrays(pipe)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert (ours - base).abs().max() > 1e-3  # the adapter changes the images


def fixed_loss(trainer, repeats: int = 8) -> float:
    """The training loss on every example with fixed noise and timesteps (no grad)."""
    from adaptkit.training.batches import Collate

    batch = Collate(trainer.components.tokenizers())(
        [trainer.training_examples[i] for i in range(len(trainer.examples))]
    )
    trainer.unet.eval()
    total = 0.0
    with torch.no_grad():
        for r in range(repeats):
            gen = torch.Generator().manual_seed(derive_seed("eval", r))
            latents = trainer.inputs.latents(batch, torch.Generator().manual_seed(0))
            hidden = trainer.inputs.conditioning(batch)
            total += diffusion_loss(
                trainer.unet, trainer.components.noise_scheduler, latents, hidden, gen, trainer.objective
            ).item()
    trainer.unet.train()
    return total / repeats


@pytest.mark.parametrize("method, lr", [("full", 2e-3), ("lora", 1e-2), ("loha", 1e-2)])
def test_overfitting_four_images_halves_the_loss(tmp_path, tiny_model_dir, data_dir, method, lr) -> None:
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        method,
        method={"options": {} if method == "full" else {"rank": 8, "conv": True}},
        train={"steps": 80, "batch_size": 4, "learning_rate": lr, "log_every": 20},
        sample={"prompts": []},
    )
    trainer = make_trainer(recipe)
    before = fixed_loss(trainer)
    trainer.train()
    after = fixed_loss(trainer)
    trainer.cleanup()
    assert after <= 0.5 * before, (before, after)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("ema", [False, True], ids=["no-ema", "ema"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_resume_gives_identical_weights(tmp_path, tiny_model_dir, data_dir, method, ema, monkeypatch) -> None:
    sections = dict(
        train={
            "steps": 6,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": 1,
            "gradient_accumulation": 2,
            "gradient_checkpointing": method == "full",
        },
        checkpoint={"every": 3},
        ema={"enabled": ema, "decay": 0.9},
        sample={"prompts": []},
        data={"random_flip": True, "center_crop": False},
    )
    straight, _ = run(write_recipe(tmp_path, tiny_model_dir, data_dir, method, name="straight", **sections))

    interrupted_recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, method, name="interrupted", **sections)
    trainer = make_trainer(interrupted_recipe)
    original_step = trainer._optimizer_step

    def step_then_stop(step, batches):
        if step == 4:  # after the checkpoint at step 3, in the middle of the run
            raise Interrupt
        return original_step(step, batches)

    monkeypatch.setattr(trainer, "_optimizer_step", step_then_stop)
    with pytest.raises(Interrupt):
        trainer.train()
    trainer.cleanup()
    resumed, result = run(interrupted_recipe, resume="latest")
    assert resumed.start_step == 3 and result.steps_this_session == 3

    a, b = trainable_snapshot(straight), trainable_snapshot(resumed)
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if ema:
        for x, y in zip(straight.ema.model.shadow_params, resumed.ema.model.shadow_params):
            assert torch.equal(x, y)


def test_adamw8bit_keeps_8bit_state_and_learns(tmp_path, tiny_model_dir, data_dir) -> None:
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        "full",
        train={"steps": 40, "batch_size": 4, "learning_rate": 2e-3, "optimizer": "adamw8bit", "log_every": 10},
        sample={"prompts": []},
    )
    trainer = make_trainer(recipe)
    before = fixed_loss(trainer)
    trainer.train()
    after = fixed_loss(trainer)
    large = [p for p in trainer.trainable if p.numel() >= 4096]
    assert large
    for param in large:
        state = trainer.optimizer.state[param]
        assert state["state1"].dtype == torch.uint8 and state["state2"].dtype == torch.uint8
    trainer.cleanup()
    assert after < 0.8 * before, (before, after)


def test_ema_offload_keeps_ema_on_cpu_and_saves_ema_weights(tmp_path, tiny_model_dir, data_dir) -> None:
    from safetensors.torch import load_file

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        "loha",
        train={"steps": 3},
        ema={"enabled": True, "offload": True, "decay": 0.5},
        sample={"prompts": []},
    )
    trainer, _ = run(recipe)
    assert {p.device.type for p in trainer.ema.model.shadow_params} == {"cpu"}
    live = trainable_snapshot(trainer)
    with trainer.ema.applied():
        averaged = trainable_snapshot(trainer)
    assert any(not torch.equal(live[k], averaged[k]) for k in live)  # EMA differs from the live weights
    saved = load_file(str(tmp_path / "runs" / "run" / "adapter" / "adapter_model.safetensors"))
    saved_values = sorted(float(v.double().sum()) for v in saved.values())
    ema_values = sorted(float(v.double().sum()) for v in averaged.values())
    assert saved_values == pytest.approx(ema_values, rel=1e-6)


def test_a_saved_ema_state_must_fit_the_weights_it_is_copied_to() -> None:
    from adaptkit.errors import UserError
    from adaptkit.recipe import EmaSection
    from adaptkit.training.ema import EmaWeights, copy_ema_weights

    params = [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4))]
    ema = EmaWeights(params, EmaSection(enabled=True, decay=0.5))
    state = ema.state_dict()
    state["shadow_params"] = [torch.full((2, 3), 1.0), torch.full((4,), 2.0)]
    copy_ema_weights(state, params, "ckpt")
    assert params[0].tolist() == [[1.0] * 3] * 2 and params[1].tolist() == [2.0] * 4
    with pytest.raises(UserError, match="ckpt: the checkpoint has no EMA state but ema.enabled = true"):
        copy_ema_weights(None, params, "ckpt")
    with pytest.raises(UserError, match="ckpt: the checkpoint's EMA holds 1 tensors that do not match the 2"):
        copy_ema_weights({"shadow_params": [torch.zeros(2, 3)]}, params, "ckpt")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.attention=xformers", "train.attention = 'xformers'"),
        ("train.mixed_precision=fp16", "train.mixed_precision = 'fp16' needs a CUDA device"),
    ],
)
def test_cuda_only_options_fail_clearly_on_cpu(tmp_path, tiny_model_dir, data_dir, capsys, override, message) -> None:
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora")
    assert main(["run", str(recipe), "--set", override, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "environment, recipe_value, ran",
    [("bf16", None, "bf16"), ("bf16", "no", "no"), (None, None, "no")],
    ids=["accelerate-config-honoured", "recipe-wins", "default-no"],
)
def test_mixed_precision_unset_follows_accelerate(
    tmp_path, tiny_model_dir, data_dir, monkeypatch, environment, recipe_value, ran
) -> None:
    """``train.mixed_precision`` unset: ``accelerate config`` / ``launch --mixed_precision`` decide
    (they set ACCELERATE_MIXED_PRECISION); a recipe value wins; recipe.toml records what ran."""
    from adaptkit.recipe import load_recipe

    if environment:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", environment)
    else:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    train = {"steps": 1} if recipe_value is None else {"steps": 1, "mixed_precision": recipe_value}
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", train=train, sample={"prompts": []})
    trainer, _ = run(recipe)
    assert trainer.recipe.train.mixed_precision == ran  # what the accelerator ran with
    assert load_recipe(tmp_path / "runs" / "run" / "recipe.toml").train.mixed_precision == ran


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_xformers_and_fp16_train_on_gpu(tmp_path, tiny_model_dir, data_dir) -> None:
    pytest.importorskip("xformers")
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, "lora", train={"attention": "xformers", "mixed_precision": "fp16"}
    )
    _, result = run(recipe)
    assert result.final_loss == result.final_loss  # finite


def test_existing_run_directory_is_refused(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    recipe = one_step_run(tmp_path, tiny_model_dir, data_dir)
    marker = tmp_path / "runs" / "run" / "adapter"
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert marker.is_dir()  # nothing lost
    assert main(["run", str(recipe), "--overwrite", "--no-progress"]) == 0


def test_resume_refuses_a_changed_recipe(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    recipe = one_step_run(tmp_path, tiny_model_dir, data_dir)
    args = ["run", str(recipe), "--resume", "--set", "method.options.rank=8", "--set", "train.steps=2"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "method.options.rank" in err and "--force" in err


def test_resume_accepts_a_change_of_speed_only_keys(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    """Caching changes how fast a run trains, not what it trains: resuming across it is allowed."""
    recipe = one_step_run(tmp_path, tiny_model_dir, data_dir)
    args = ["run", str(recipe), "--resume", "--set", "train.steps=2", "--no-progress"]
    assert main([*args, "--set", "data.cache_latents=false", "--set", "data.cache_text=false"]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_resume_from_an_older_checkpoint_discards_the_abandoned_future(tmp_path, tiny_model_dir, data_dir) -> None:
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        "lora",
        train={"steps": 4},
        checkpoint={"every": 1, "keep": 1},
        sample={"prompts": []},
    )
    run(recipe)
    root = tmp_path / "runs" / "run" / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step-000004"]
    run(
        write_recipe(
            tmp_path,
            tiny_model_dir,
            data_dir,
            "lora",
            train={"steps": 4},
            checkpoint={"every": 2, "keep": 3},
            sample={"prompts": []},
            name="branch",
        )
    )
    branch = tmp_path / "runs" / "branch" / "checkpoints"
    run(
        write_recipe(
            tmp_path,
            tiny_model_dir,
            data_dir,
            "lora",
            train={"steps": 3},
            checkpoint={"every": 1, "keep": 1},
            sample={"prompts": []},
            name="branch",
        ),
        resume=str(branch / "step-000002"),
    )
    assert [p.name for p in branch.iterdir()] == ["step-000003"]  # step 4 of the abandoned run is gone


def test_resume_past_the_end_is_refused(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", train={"steps": 2}, sample={"prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 0
    assert main(["run", str(recipe), "--resume", "--set", "train.steps=1", "--no-progress"]) == 2
    assert "past train.steps = 1" in capsys.readouterr().err


def test_prediction_type_override_reaches_the_samplers(tmp_path, tiny_model_dir, data_dir) -> None:
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.sampling.pipeline import load_pipeline

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        "lora",
        train={"steps": 1, "prediction_type": "v_prediction"},
        sample={"prompts": []},
    )
    trainer, _ = run(recipe)
    assert trainer.components.scheduler_config["prediction_type"] == "v_prediction"
    registries = get_plugin_manager().collect()
    pipe = load_pipeline(
        ModelSection(base=str(tiny_model_dir)),
        registries.samplers.get("ddim").cls(),
        registries,
        tmp_path / "runs" / "run",
    )
    assert pipe.scheduler.config.prediction_type == "v_prediction"


def test_long_captions_are_truncated_and_counted(tmp_path, tiny_model_dir) -> None:
    from adaptkit.testing.datasets import pattern_image

    folder = tmp_path / "folder"
    folder.mkdir()
    long_caption = " ".join(["a very long caption about a ninja"] * 30)  # far over 77 tokens
    for i, caption in enumerate([long_caption, "a ninja"]):
        pattern_image(i).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(caption)
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lora",
        data={"adapter": "imagefolder", "options": {"source": str(folder)}},
        train={"steps": 3, "batch_size": 2},
        sample={"prompts": []},
    )
    _, result = run(recipe)
    assert result.truncated_captions == 3  # each batch of 2 holds the long caption once
