"""Optimizers as components: every built-in trains and resumes bit-exactly on the tiny model,
schedule-free samples its averaged weights and gets its training weights back exactly, a missing
package is one line before any model loads, and a plugin adds an optimizer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from adaptkit.builtins.optimizers import BUILTIN_OPTIMIZERS
from adaptkit.cli import main
from adaptkit.plugins import get_plugin_manager
from adaptkit.testing.datasets import write_naruto
from adaptkit.testing.family_runs import adapter_tensors, train

from training_helpers import write_recipe

#: Learning rates that suit each (Prodigy learns its own step: 1.0 is its multiplier).
LEARNING_RATES = {"prodigy": 1.0, "lion8bit": 1e-4}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("data") / "naruto", rows=4).path


@pytest.mark.parametrize("name", [cls.name for cls in BUILTIN_OPTIMIZERS])
def test_every_optimizer_resumes_bit_exactly(name: str, tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    """4 steps straight (sampling after every step) == 2 steps, stop, resume to 4; and the weights moved."""
    sections = dict(
        train={"steps": 4, "optimizer": name, "learning_rate": LEARNING_RATES.get(name, 1e-3)},
        checkpoint={"every": 2},
        sample={"every": 1},
    )
    straight = adapter_tensors(train(write_recipe(tmp_path, tiny_model_dir, data_dir, name="straight", **sections)))
    stopped = write_recipe(tmp_path, tiny_model_dir, data_dir, name="stopped", **sections)
    train(stopped, "train.steps=2")
    resumed = adapter_tensors(train(stopped, resume="latest"))
    assert straight.keys() == resumed.keys() and straight
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key
    assert any(value.abs().sum() > 0 for key, value in straight.items() if "lora_B" in key)  # it trained


def test_schedule_free_reads_the_average_and_restores_the_training_weights_exactly() -> None:
    from adaptkit.builtins.optimizers import ScheduleFreeAdamW
    from adaptkit.recipe import TrainSection

    param = torch.nn.Parameter(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    component = ScheduleFreeAdamW()
    optimizer = component.build([param], TrainSection(learning_rate=0.1))
    for _ in range(5):
        param.grad = param.detach().clone()
        optimizer.step()
    training = param.detach().clone()
    with component.evaluating(optimizer, [param]):
        averaged = param.detach().clone()
    assert not torch.equal(averaged, training)  # the averaged point is another one
    assert torch.equal(param, training) and optimizer.param_groups[0]["train_mode"]


def test_a_missing_package_is_one_line_before_any_model_loads(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "prodigyopt" else real(n, *a))
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, train={"optimizer": "prodigy"})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"error: {recipe}: train.optimizer = 'prodigy' needs prodigyopt, which is not installed; "
        "pip install 'prodigyopt' (or 'adaptkit[optimizers]')"
    ]
    assert not (tmp_path / "runs" / "run").exists()


def test_an_unknown_optimizer_or_option_names_the_key(tmp_path: Path, tiny_model_dir: Path, data_dir, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, train={"optimizer": "adamv"})
    assert main(["validate", str(recipe)]) == 2
    assert "train.optimizer: unknown optimizer 'adamv'" in capsys.readouterr().err
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, train={"optimizer": "prodigy", "optimizer_options": {"d_cof": 1}}
    )
    assert main(["validate", str(recipe)]) == 2
    assert "train.optimizer_options.d_cof: unknown key (valid: d_coef, use_bias_correction" in capsys.readouterr().err


PLUGIN = """
import torch
import adaptkit

class PlainSGD(adaptkit.Optimizer):
    name = "plain-sgd"
    description = "torch's SGD, from a plugin."

    def build(self, params, train):
        return torch.optim.SGD(params, lr=train.learning_rate)

@adaptkit.hookimpl
def register_optimizers(register):
    register(PlainSGD)
"""


def test_register_optimizers(tmp_path: Path, tiny_model_dir: Path, data_dir: Path) -> None:
    """A plugin's optimizer is listed and trains a run."""
    module = tmp_path / "sgd_plugin.py"
    module.write_text(textwrap.dedent(PLUGIN))
    optimizers = get_plugin_manager([str(module)]).collect().optimizers
    assert {"adamw", "adamw8bit", "plain-sgd", "prodigy", "schedule-free-adamw"} <= set(optimizers.names())
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data_dir,
        train={"optimizer": "plain-sgd", "steps": 2},
        plugins={"modules": [str(module)]},
    )
    assert (train(recipe) / "adapter" / "pytorch_lora_weights.safetensors").is_file()
