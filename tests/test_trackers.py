"""``[log] trackers``: TensorBoard receives every logged step; unknown or missing trackers are one-line errors."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from adaptkit.cli import main
from adaptkit.errors import UserError
from adaptkit.recipe import load_recipe
from adaptkit.testing.datasets import write_naruto
from adaptkit.training import trackers

from training_helpers import write_recipe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=4).path


def read_scalars(log_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = log_dir.glob("events.out.tfevents.*")  # add_hparams writes its own file in a subfolder
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def test_tensorboard_receives_every_logged_step(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        train={"steps": 3},
        log={"trackers": ["tensorboard"]},
        sample={"prompts": []},
    )
    assert main(["run", str(recipe), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "run"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = read_scalars(run_dir / "logs" / "run", "loss")
    assert sorted(losses) == [1, 2, 3] == [row["step"] for row in rows]
    for row in rows:
        assert losses[row["step"]] == pytest.approx(row["loss"], rel=1e-6)
    assert read_scalars(run_dir / "logs" / "run", "lr")[3] == pytest.approx(rows[-1]["lr"], rel=1e-6)
    (hparams,) = (run_dir / "logs" / "run").rglob("hparams.yml")
    assert "train.steps: 3" in hparams.read_text().splitlines()


def test_hyperparameters_are_the_recipes_scalars(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, tiny_model_dir, None, log={"trackers": ["tensorboard"]}))
    values = trackers.hyperparameters(recipe)
    assert values["train.steps"] == 4 and values["method.name"] == "lora" and values["data.resolution"] == 32
    assert "sample.prompts" not in values and "run.name" in values
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())


def test_no_trackers_by_default(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, tiny_model_dir, None))
    assert recipe.log.trackers == [] and trackers.accelerator_options(recipe.log, tmp_path) == {}


def test_an_unknown_tracker_names_the_valid_ones(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, None, log={"trackers": ["mlflow"]})
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "log.trackers.0: Input should be 'tensorboard' or 'wandb' (got 'mlflow')" in err and "Traceback" not in err


def test_a_tracker_that_is_not_installed_says_how_to_install_it(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find_spec(name, *a)
    )
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, log={"trackers": ["tensorboard"]})
    expected = (
        "log.trackers: 'tensorboard' needs the tensorboard package, which is not installed (pip install tensorboard)"
    )
    for command in (["validate", str(recipe)], ["run", str(recipe), "--no-progress"]):
        capsys.readouterr()
        assert main(command) == 2
        assert f"{recipe}: {expected}" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "run").exists()  # refused before anything was written
    with pytest.raises(UserError, match=re.escape(expected)):
        trackers.accelerator_options(load_recipe(recipe).log, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (optional tracker)")
def test_wandb_logs_offline_into_the_run(tmp_path: Path, tiny_model_dir: Path, data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, train={"steps": 2}, log={"trackers": ["wandb"]}, sample={"prompts": []}
    )
    assert main(["run", str(recipe), "--no-progress"]) == 0
    assert list((tmp_path / "runs" / "run" / "logs" / "wandb").glob("offline-run-*"))
