"""What a run folder says about its run: state, progress, speed and headline figures.

Everything is inferred from the folder (:class:`~adaptkit.run.RunDir`), so runs started from the CLI
appear as well as those the UI launched:

* **running**: a live process on this host holds the run lock (``.lock``);
* **finished**: ``result.json`` is there and no checkpoint or logged step is past it (a run resumed
  with ``--set train.steps=N`` finishes at N whatever its saved ``recipe.toml`` says);
* **interrupted**: no result, but a complete checkpoint at (or past) the last logged step, which is
  what a clean stop (Ctrl-C, SIGTERM, the UI's stop) leaves; ``--resume`` continues it;
* **failed**: neither, e.g. a crash after the last checkpoint, or before the first.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.evaluation.runner import METRICS_JSON, REPORT_HTML
from adaptkit.interop.metadata import read_metrics
from adaptkit.run import RunDir
from adaptkit.training.checkpoint import is_complete, list_checkpoints
from adaptkit.training.run_lock import live_holder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"


@dataclass
class RunStatus:
    """One run as the runs page shows it."""

    name: str
    state: str
    base: str
    family: str
    method: str
    step: int
    total: int
    loss: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    pid: int | None = None
    checkpoints: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    has_report: bool = False
    samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_recipe_table(run_dir: Path) -> dict[str, Any]:
    """The run's saved ``recipe.toml`` as plain TOML (no validation: a listing must not fail on an old run)."""
    try:
        return tomllib.loads(RunDir(run_dir).recipe.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_run_dir(path: Path) -> bool:
    """A folder holding an adaptkit run (its ``recipe.toml``)."""
    return path.is_dir() and RunDir(path).recipe.is_file()


def list_run_dirs(runs_dir: Path) -> list[Path]:
    """The run folders directly under ``runs_dir``, newest first (by their recipe's time)."""
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if not p.name.startswith(".") and is_run_dir(p)]
    return sorted(found, key=lambda p: RunDir(p).recipe.stat().st_mtime, reverse=True)


@functools.lru_cache(maxsize=256)
def _detected_family(run_dir: str, recipe_mtime: float) -> str:
    from adaptkit.models.family import choose_family
    from adaptkit.models.source import resolve_base
    from adaptkit.run import read_run_recipe

    model = read_run_recipe(Path(run_dir)).model
    return choose_family(resolve_base(model), model).name


def family_of(run_dir: Path, recipe: dict[str, Any]) -> str:
    """``model.family``, or the family detected from the base (without loading it) when that is ``auto``."""
    family = str(recipe.get("model", {}).get("family", "auto"))
    if family != "auto":
        return family
    try:
        return _detected_family(str(run_dir), RunDir(run_dir).recipe.stat().st_mtime)
    except (UserError, OSError, ValueError):  # a base no longer there: the listing still shows the run
        return family


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def seconds_per_step(rows: list[dict[str, Any]]) -> float | None:
    """From the last two logged rows of the current session (``time_s`` restarts when a run resumes)."""
    timed = [(r["step"], r["time_s"]) for r in rows if isinstance(r.get("step"), int) and _number(r.get("time_s"))]
    if len(timed) < 2:
        return None
    (s1, t1), (s2, t2) = timed[-2], timed[-1]
    return (t2 - t1) / (s2 - s1) if s2 > s1 and t2 > t1 else None


def session_steps(holder: dict[str, Any], default: int) -> int:
    """The ``train.steps`` the running process was given (``--set train.steps=N``, as its lock records
    its command line), else ``default`` (the saved recipe's)."""
    found = re.findall(r"train\.steps=(\d+)", str(holder.get("command", "")))
    return int(found[-1]) if found else default


def _result_steps(files: RunDir) -> int | None:
    try:
        steps = json.loads(files.result.read_text(encoding="utf-8")).get("steps")
    except (OSError, ValueError, AttributeError):
        return None
    return steps if isinstance(steps, int) else None


def _figures(files: RunDir) -> list[dict[str, Any]]:
    try:
        figures = json.loads((files.eval / METRICS_JSON).read_text(encoding="utf-8")).get("figures", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in figures if isinstance(f, dict) and "name" in f]


def infer_state(running: bool, result_steps: int | None, checkpoint_step: int | None, logged: int) -> str:
    """The run's state from what its folder holds (see the module docstring)."""
    if running:
        return RUNNING
    if result_steps is not None and result_steps >= max(checkpoint_step or 0, logged):
        return FINISHED
    if checkpoint_step is not None and checkpoint_step >= logged:
        return INTERRUPTED
    return FAILED


def read_status(run_dir: Path) -> RunStatus:
    """The :class:`RunStatus` of the run in ``run_dir``."""
    files = RunDir(Path(run_dir))
    recipe = read_recipe_table(files.root)
    model, method, train = (recipe.get(k, {}) for k in ("model", "method", "train"))
    total = train.get("steps") if isinstance(train.get("steps"), int) else 0
    rows = [r for r in read_metrics(files.metrics) if isinstance(r.get("step"), int)]
    logged = rows[-1]["step"] if rows else 0
    checkpoints = [p for p in list_checkpoints(files.checkpoints) if is_complete(p, verify_hashes=False)]
    checkpoint_step = int(checkpoints[-1].name.split("-")[-1]) if checkpoints else None
    holder = live_holder(files.root)
    result_steps = _result_steps(files)
    state = infer_state(holder is not None, result_steps, checkpoint_step, logged)
    step = max([logged, checkpoint_step or 0] + ([result_steps] if state == FINISHED and result_steps else []))
    if state == FINISHED and result_steps is not None:
        total = result_steps
    elif holder is not None:
        total = session_steps(holder, total)
    last = next((r for r in reversed(rows) if "loss" in r), {})  # val_loss rows are rows of their own
    pace = seconds_per_step(rows) if state == RUNNING else None
    return RunStatus(
        name=files.root.name,
        state=state,
        base=str(model.get("base", "?")),
        family=family_of(files.root, recipe),
        method=str(method.get("name", "?")),
        step=step,
        total=total,
        loss=_number(last.get("loss")),
        images_per_s=_number(last.get("images_per_s")),
        eta_s=max(0.0, (total - step) * pace) if pace is not None else None,
        pid=holder.get("pid") if holder else None,
        checkpoints=[p.name for p in checkpoints],
        figures=_figures(files),
        has_report=(files.eval / REPORT_HTML).is_file(),
        samples=sorted(p.name for p in files.samples.glob("*.png")) if files.samples.is_dir() else [],
    )
