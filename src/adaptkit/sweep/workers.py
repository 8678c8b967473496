"""Starting a sweep: check the recipe and the space, keep the space the sweep started with, run
``workers`` workers on the shared study (one per GPU when there are enough), write the report.

More workers can join from other terminals or machines: the same command with the same ``--name``
and ``--storage`` (an RDB URL every machine reaches, e.g. PostgreSQL) joins the same study.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.sweep.folder import SweepDir
from adaptkit.sweep.space import check_against_recipe, load_space
from adaptkit.sweep.study import Sweep, pruning_rule, sweep_of, work


def keep_space(folder: SweepDir, space_file: Path) -> None:
    """Copy the space file into the sweep folder; a sweep that continues must search the same space."""
    text = Path(space_file).read_text(encoding="utf-8")
    folder.root.mkdir(parents=True, exist_ok=True)
    if folder.space.is_file() and folder.space.read_text(encoding="utf-8") != text:
        raise UserError(
            f"{space_file}: differs from the space sweep {folder.root} started with ({folder.space}); "
            "start a new sweep with --name, or restore that space file"
        )
    if not folder.space.is_file():
        folder.space.write_text(text, encoding="utf-8")


def worker_command(recipe: str, space_file: Path, sweep: Sweep) -> list[str]:
    """The command that adds one more worker to ``sweep``."""
    return [
        sys.executable, "-m", "adaptkit.cli", "sweep", recipe,
        "--space", str(space_file), "--name", sweep.name, "--storage", sweep.storage_url, "--workers", "1",
    ]  # fmt: skip


def _device_env(index: int, workers: int) -> dict[str, str]:
    """Worker ``index``'s environment: its own GPU when there is one per worker."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() >= workers and "CUDA_VISIBLE_DEVICES" not in os.environ:
        return {**os.environ, "CUDA_VISIBLE_DEVICES": str(index)}
    return dict(os.environ)


def run_sweep(
    recipe: str,
    space_file: Path,
    name: str | None = None,
    storage: str | None = None,
    workers: int = 1,
    say: Any = print,
) -> Any:
    """Run (or continue) a sweep with ``workers`` workers; returns the chosen trial (or None)."""
    import importlib.util

    from adaptkit.sweep.report import write_report

    if workers < 1:
        raise UserError(f"--workers {workers}: give at least 1")
    if importlib.util.find_spec("optuna") is None:
        raise UserError("adaptkit sweep needs Optuna, which is not installed: pip install 'adaptkit[sweep]'")
    from adaptkit.recipe.shipped import locate_space

    space_file = locate_space(space_file)
    spec = load_space(space_file)
    resolved = check_against_recipe(spec, recipe, space_file)
    sweep = sweep_of(recipe, spec, resolved, name, storage)
    keep_space(sweep.folder, space_file)
    s = spec.sweep
    say(f"sweep {sweep.name}: up to {s.trials} trials or {s.minutes:g} minutes, in {sweep.folder.root}")
    say(f"  objective: the most style gain with a fidelity loss of at most {s.tolerance:.0%} of the base's")
    say(f"  pruning: {pruning_rule(spec)}")
    helpers = []
    for index in range(1, workers):
        log = sweep.folder.root / "logs" / f"worker-{index}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            command = worker_command(recipe, space_file, sweep)
            helpers.append(
                subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_device_env(index, workers))
            )
        say(f"  worker {index}: pid {helpers[-1].pid}, log {log}")
    os.environ.update({k: v for k, v in _device_env(0, workers).items() if k == "CUDA_VISIBLE_DEVICES"})
    try:
        study = work(sweep, resolved, after_trial=lambda study, trial: write_report(sweep, study), say=say)
    finally:
        for helper in helpers:
            helper.wait()
    chosen = write_report(sweep, study)
    say(f"report: {sweep.folder.report}")
    if chosen is None:
        say("no trial finished with style and fidelity figures")
        return None
    t = chosen.trade_off
    say(
        f"chosen: {chosen.folder} (style gain {t.style_gain:+.3g}, fidelity loss {t.fidelity_loss:+.3g}, "
        f"strength {chosen.trial.user_attrs['adapter_scale']:g}); "
        f"run it again with: adaptkit run {sweep.folder.best_recipe}"
    )
    return chosen
