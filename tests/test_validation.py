"""The validation loss: held-out images at fixed noise levels with fixed noise, so the same weights give
the same value; logged and plotted; early stop with its state in checkpoints; one line without a
held-out split; the flow objective too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.evaluation.report import loss_curve
from adaptkit.testing.datasets import write_naruto
from adaptkit.training.validation import EarlyStop

from training_helpers import make_trainer, run, write_recipe

VALIDATION = {"every": 2, "examples": 2, "noise_levels": [0.2, 0.8]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("data") / "naruto", rows=8).path


def recipe(tmp_path: Path, base: Path, data_dir: Path, name: str = "run", **sections) -> Path:
    sections.setdefault("validation", VALIDATION)
    sections["sample"] = {"prompts": [], **sections.get("sample", {})}
    data = {"options": {"eval_fraction": 0.25}}
    return write_recipe(tmp_path, base, data_dir, name=name, data=data, **sections)


def val_rows(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row["val_loss"]) for row in rows if "val_loss" in row]


def test_the_same_weights_give_the_same_validation_loss(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    trainer, _ = run(recipe(tmp_path, tiny_model_dir, data_dir))
    logged = val_rows(trainer.run.run_dir)
    assert [step for step, _ in logged] == [2, 4] and all(v > 0 for _, v in logged)
    again = [trainer.validation.measure(trainer.objective, trainer.components) for _ in range(2)]
    assert again[0] == again[1] == logged[-1][1]  # fixed noise, fixed levels: identical
    assert len(trainer.validation.held_out) == min(2, len(trainer.validation.examples)) >= 1
    assert loss_curve(trainer.run.run_dir / "metrics.jsonl") is not None


def test_the_held_out_images_are_never_trained_on(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    trainer = make_trainer(recipe(tmp_path, tiny_model_dir, data_dir))
    try:
        held_out = set(trainer.validation.examples.keys())
        assert held_out and not held_out & set(trainer.examples.keys())
    finally:
        trainer.cleanup()


def test_early_stop_finishes_at_the_stopping_step(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation every step, patience 2, a loss that only rises: the run stops after step 3 and
    leaves that step's checkpoint, result and result.json."""
    from adaptkit.training.validation import Validation

    values = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    monkeypatch.setattr(Validation, "measure", lambda self, objective, components: next(values))
    path = recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        train={"steps": 6},
        validation={**VALIDATION, "every": 1, "early_stop_patience": 2},
    )
    trainer, result = run(path)
    assert result.steps == 3 and result.steps_this_session == 3
    run_dir = trainer.run.run_dir
    assert json.loads((run_dir / "result.json").read_text())["steps"] == 3
    assert (run_dir / "checkpoints" / "step-000003").is_dir()
    assert (run_dir / "adapter" / "pytorch_lora_weights.safetensors").is_file()
    assert val_rows(run_dir) == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_the_early_stop_state_round_trips() -> None:
    stop = EarlyStop(patience=2)
    assert not stop.record(1, 0.5) and not stop.record(2, 0.6)
    again = EarlyStop(patience=2)
    again.load_state_dict(stop.state_dict())
    assert again.record(3, 0.7) and again.history == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert not EarlyStop(patience=0).record(1, 1.0) and not EarlyStop(patience=0).record(2, 9.0)


def test_resume_with_validation_is_bit_exact(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    from adaptkit.testing.family_runs import adapter_tensors, train

    sections = {"checkpoint": {"every": 2}}
    straight = train(recipe(tmp_path, tiny_model_dir, data_dir, name="straight", **sections))
    stopped = recipe(tmp_path, tiny_model_dir, data_dir, name="stopped", **sections)
    train(stopped, "train.steps=2")
    resumed = train(stopped, resume="latest")
    a, b = adapter_tensors(straight), adapter_tensors(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert val_rows(straight) == val_rows(resumed)


def test_no_held_out_split_is_one_line_before_the_model_loads(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    path = write_recipe(tmp_path, tiny_model_dir, data_dir, validation={"every": 2}, sample={"prompts": []})
    assert main(["run", str(path), "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "data.options.eval_fraction: is 0" in lines[0], lines


def test_a_bad_noise_level_names_the_key(tmp_path: Path, tiny_model_dir: Path, data_dir: Path, capsys) -> None:
    path = recipe(tmp_path, tiny_model_dir, data_dir, validation={"every": 2, "noise_levels": [0.5, 1.5]})
    assert main(["validate", str(path)]) == 2
    assert "validation.noise_levels: 1.5 is not a noise level (valid: 0.0 to 1.0)" in capsys.readouterr().err


def test_a_flow_family_validates_too(tmp_path: Path, data_dir: Path) -> None:
    from adaptkit.testing.bases import TestingModels

    trainer, _ = run(recipe(tmp_path, TestingModels().locate("tiny-sd3"), data_dir, sample={"sampler": "flow-euler"}))
    logged = val_rows(trainer.run.run_dir)
    assert [step for step, _ in logged] == [2, 4] and all(torch.isfinite(torch.tensor(v)) for _, v in logged)
