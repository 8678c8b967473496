"""One trial: an ordinary ``adaptkit run`` of the recipe with the trial's values, in its own process,
watched for the pruning signal, then judged by its evaluation.

The run is a child process that gets SIGINT when its worker dies (Linux), so a killed worker's run
checkpoints and stops; the trial's lock (:class:`~adaptkit.sweep.folder.TrialLock`) is inherited
by the run, so the trial counts as abandoned only once both are gone. A trial folder with a complete
checkpoint is resumed (``--resume``), one with a finished evaluation is only read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.evaluation.ranking import TradeOff, best
from adaptkit.sweep.folder import SweepDir

#: How often a running trial's metrics are read for the pruning signal.
POLL_S = 1.0


class TrialFailed(Exception):
    """The trial's run or its evaluation did not finish (the message names its log)."""


class TrialStopped(Exception):
    """The trial's run was stopped because the pruner asked (at ``step``)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pruned at step {step}")
        self.step = step


@dataclass(frozen=True)
class Judged:
    """A finished trial's position at the adapter strength that serves the objective best."""

    trade_off: TradeOff
    scale: float


def _die_with_parent() -> None:
    """In the child: SIGINT (the clean stop) when the worker that started it dies (Linux only)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):  # not Linux: the run outlives its worker
        pass


def run_command(recipe: str, values: dict[str, Any], folder: Path) -> list[str]:
    """The ``adaptkit run`` command of a trial: resume when its folder has a complete checkpoint of
    this trial's recipe, else start over (``--overwrite``)."""
    from adaptkit.run import RunDir
    from adaptkit.sweep.space import to_override
    from adaptkit.training.checkpoint import is_complete, list_checkpoints

    resumable = trained_with(folder, values) and any(
        is_complete(p) for p in list_checkpoints(RunDir(folder).checkpoints)
    )
    sets = [to_override(k, v) for k, v in values.items()]
    sets += [f"run.output_dir={_toml_string(folder.parent)}", f"run.name={_toml_string(folder.name)}"]
    command = [sys.executable, "-m", "adaptkit.cli", "run", recipe, "--no-progress"]
    command += [part for text in sets for part in ("--set", text)]
    return command + (["--resume"] if resumable else ["--overwrite"])


def trained_with(folder: Path, values: dict[str, Any]) -> bool:
    """Whether the run in ``folder`` has this trial's values (a folder left by another study's trial
    of the same name has not: it is trained again, never reused)."""
    from adaptkit.errors import UserError
    from adaptkit.recipe.loading import read_toml
    from adaptkit.run import RunDir

    try:
        recipe = read_toml(RunDir(folder).recipe)
    except UserError:
        return False
    for key, wanted in values.items():
        node: Any = recipe
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != wanted:
            return False
    return True


def _toml_string(value: object) -> str:
    from adaptkit.recipe.dump import toml_value

    return toml_value(str(value))


def new_val_losses(metrics: Path, seen: set[int]) -> list[tuple[int, float]]:
    """The ``(step, val_loss)`` rows of ``metrics.jsonl`` not in ``seen`` (added to it)."""
    from adaptkit.interop.metadata import read_metrics

    found = []
    for row in read_metrics(metrics):
        step, value = row.get("step"), row.get("val_loss")
        if isinstance(step, int) and isinstance(value, (int, float)) and step not in seen:
            seen.add(step)
            found.append((step, float(value)))
    return found


def train_and_evaluate(
    sweep: SweepDir,
    name: str,
    recipe: str,
    values: dict[str, Any],
    lock_fd: int,
    should_stop: Callable[[int, float], bool] | None = None,
) -> None:
    """Run the trial's ``adaptkit run`` (the recipe with ``values``) to its end (training, then its
    ``[eval]``), or until ``should_stop(step, val_loss)`` says to prune: the run then gets SIGINT
    (checkpoint, exit) and :class:`TrialStopped` is raised. A failed run raises :class:`TrialFailed`.
    A folder that already holds this trial's evaluation is only read."""
    from adaptkit.run import RunDir

    folder = sweep.trial(name)
    if _evaluated(folder) and trained_with(folder, values):
        return
    log = sweep.log(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    with log.open("a", encoding="utf-8") as out:
        process = subprocess.Popen(
            run_command(recipe, values, folder),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=(lock_fd,),
            preexec_fn=_die_with_parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            while process.poll() is None:
                time.sleep(POLL_S)
                for step, value in new_val_losses(RunDir(folder).metrics, seen) if should_stop else ():
                    if should_stop(step, value):
                        process.send_signal(signal.SIGINT)
                        process.wait()
                        raise TrialStopped(step)
        except BaseException:
            if process.poll() is None:  # the worker is stopping: let the run checkpoint first
                process.send_signal(signal.SIGINT)
                process.wait()
            raise
    if process.returncode != 0 or not _evaluated(folder):
        raise TrialFailed(f"{name}: adaptkit run exited with status {process.returncode} (see {log})")


def _evaluated(folder: Path) -> bool:
    from adaptkit.evaluation.runner import METRICS_JSON
    from adaptkit.run import RunDir

    files = RunDir(folder)
    return files.result.is_file() and (files.eval / METRICS_JSON).is_file()


def judge(folder: Path, tolerance: float, style_axes: Any, fidelity_axes: Any) -> Judged:
    """A finished trial's trade-off: the best of its adapter strengths by the ranking rule (the
    headline evaluation alone when it scored no others)."""
    import json

    from adaptkit.evaluation.context import Figure
    from adaptkit.evaluation.ranking import trade_off
    from adaptkit.evaluation.runner import METRICS_JSON
    from adaptkit.evaluation.scales import read_scales
    from adaptkit.run import RunDir

    eval_dir = RunDir(folder).eval
    headline = json.loads((eval_dir / METRICS_JSON).read_text(encoding="utf-8"))
    scored = [(float(headline["settings"].get("adapter_scale", 1.0)), [Figure(**f) for f in headline["figures"]])]
    scored += [(s.scale, s.figures) for s in read_scales(eval_dir)]
    placed = {}
    for scale, figures in scored:
        t = trade_off(f"{folder.name} @ {scale:g}", figures, style_axes, fidelity_axes)
        if t is not None:
            placed.setdefault(scale, t)
    if not placed:
        raise TrialFailed(
            f"{folder.name}: its evaluation has no style and fidelity figures "
            "(set [sweep] style_figure / fidelity_figure)"
        )
    chosen = best(list(placed.values()), tolerance)
    assert chosen is not None
    scale = next(s for s, t in placed.items() if t is chosen)
    return Judged(chosen, scale)
