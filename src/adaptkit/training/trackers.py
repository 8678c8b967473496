"""Experiment trackers (``[log] trackers``) through accelerate: TensorBoard and Weights & Biases.

The built-in plugin :mod:`adaptkit.builtins.trackers` reports a tracker whose package is missing
when the recipe is resolved, before anything loads (:func:`missing`).

The trainer passes :func:`accelerator_options` to ``Accelerator(...)``, calls :func:`start` once the
run directory exists and :func:`log` wherever it writes ``metrics.jsonl``; ``end_training`` closes
them. Logs go to ``<run_dir>/logs/<project>/``. W&B runs offline unless ``[log] wandb_mode =
"online"`` (sync later with ``wandb sync <run_dir>/logs/wandb/offline-run-*``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError
from adaptkit.run import RunDir

if TYPE_CHECKING:
    from accelerate import Accelerator

    from adaptkit.recipe import LogSection, Recipe
    from adaptkit.recipe.schema import TrackerName

#: Tracker name (``[log] trackers``' valid values) -> (the module it needs, how to install it).
TRACKERS: dict["TrackerName", tuple[str, str]] = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),
    "wandb": ("wandb", "pip install wandb"),
}


def missing(log: "LogSection") -> list[str]:
    """One line per configured tracker whose package is not installed, saying how to install it."""
    lines = []
    for name in log.trackers:
        module, install = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            lines.append(f"log.trackers: '{name}' needs the {module} package, which is not installed ({install})")
    return lines


def accelerator_options(log: "LogSection", logs_dir: Path) -> dict[str, Any]:
    """``Accelerator`` keyword arguments for the configured trackers (none when there are none);
    ``logs_dir`` is the run's ``logs/``."""
    if not log.trackers:
        return {}
    problems = missing(log)
    if problems:
        raise UserError(*problems)
    return {"log_with": list(log.trackers), "project_dir": str(logs_dir)}


def start(accelerator: "Accelerator", recipe: "Recipe", run_dir: Path) -> None:
    """Open the trackers (main process only) with the recipe's scalar settings as hyperparameters.

    The project is ``[log] project``, else the run's name (the run directory's name).
    """
    log, run_name = recipe.log, Path(run_dir).name
    if not log.trackers:
        return
    init_kwargs: dict[str, Any] = {}
    if "wandb" in log.trackers:
        wandb_dir = RunDir(Path(run_dir)).logs
        wandb_dir.mkdir(parents=True, exist_ok=True)
        init_kwargs["wandb"] = {"mode": log.wandb_mode, "dir": str(wandb_dir), "name": run_name}
    accelerator.init_trackers(log.project or run_name, config=hyperparameters(recipe), init_kwargs=init_kwargs)


def log(accelerator: "Accelerator", logs: dict[str, Any], step: int) -> None:
    """Send one logging step's figures (``metrics.jsonl``'s row, without ``step``) to every tracker."""
    accelerator.log({key: value for key, value in logs.items() if key != "step"}, step=step)


def hyperparameters(recipe: "Recipe") -> dict[str, bool | int | float | str]:
    """The recipe's scalar values, flattened (``train.learning_rate``); lists and unset values are left out."""
    flat: dict[str, bool | int | float | str] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{prefix}{key}.")
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix.rstrip(".")] = value

    walk(recipe.model_dump(mode="json"), "")
    return flat
