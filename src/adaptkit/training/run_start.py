"""Claiming a run folder before any expensive work: the lock, then what this start may do there.

- a fresh start refuses a folder that holds finished work (a complete checkpoint, ``result.json``
  or ``adapter/``) unless ``--overwrite``; a folder left by a start that stopped before its first
  checkpoint holds nothing to keep, so it is started again, saying so;
- ``--resume`` finds its checkpoint first (so a folder with none fails now, not after caching) and
  refuses a run that already finished;
- ``--overwrite`` empties the folder but keeps the lock file, so the lock is held throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from adaptkit.errors import IOFailure, UserError
from adaptkit.recipe import Recipe
from adaptkit.run import RunDir, write_resolved_recipe
from adaptkit.training import checkpoint as ckpt
from adaptkit.training.run_lock import LOCK_FILE, RunLock


def holds_finished_work(files: RunDir) -> bool:
    """A complete checkpoint, the result or ``result.json``: something a fresh start would destroy."""
    return files.result.is_file() or files.adapter.exists() or ckpt.newest_complete(files.checkpoints) is not None


def empty_run_dir(run_dir: Path) -> None:
    """Remove everything in ``run_dir`` but the lock file."""
    for child in run_dir.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def claim_run_dir(
    run_dir: Path,
    recipe: Recipe,
    lock: RunLock,
    *,
    resume: str | None,
    overwrite: bool,
    recipe_dir: Path | None = None,
) -> Path | None:
    """Lock ``run_dir`` and prepare it for this start; returns the checkpoint to resume from (or None).

    An OSError (a read-only or unwritable output folder) is one :class:`IOFailure` line.
    """
    try:
        return _claim(RunDir(Path(run_dir)), recipe, lock, resume, overwrite, recipe_dir)
    except OSError as exc:
        raise IOFailure.from_os_error(exc, "prepare the run folder") from exc


def _claim(
    files: RunDir, recipe: Recipe, lock: RunLock, resume: str | None, overwrite: bool, recipe_dir: Path | None
) -> Path | None:
    lock.acquire("--overwrite" if overwrite else "--resume" if resume is not None else "a new run")
    if resume is not None:
        path = ckpt.resume_path(resume, files.checkpoints)
        if not ckpt.is_complete(path, verify_hashes=False):
            raise UserError(f"--resume {path}: not a complete checkpoint folder (no such folder, or no manifest)")
        manifest = ckpt.read_manifest(path) or {}
        step = manifest.get("step")
        if isinstance(step, int) and step > recipe.train.steps:
            raise UserError(
                f"--resume {path}: the checkpoint is at step {step}, past train.steps = "
                f"{recipe.train.steps}; raise train.steps to continue"
            )
        if step == recipe.train.steps and files.result.is_file():
            raise UserError(
                f"--resume {path}: the run already finished at step {step} (train.steps = {recipe.train.steps}); "
                "nothing was changed — raise train.steps (--set train.steps=N) to train further"
            )
        if not files.recipe.is_file():
            write_resolved_recipe(files.recipe, recipe, recipe_dir)
        return path
    if any(child.name != LOCK_FILE for child in files.root.iterdir()):
        if overwrite:
            empty_run_dir(files.root)
        elif holds_finished_work(files):
            raise UserError(
                f"{files.root}: output directory already holds a run; pass --resume to continue it, "
                "--overwrite to replace it, or set run.name to another name"
            )
        else:
            print(
                f"{files.root}: holds no checkpoint or result (an earlier start stopped before its first "
                "checkpoint); starting it again"
            )
            empty_run_dir(files.root)
    write_resolved_recipe(files.recipe, recipe, recipe_dir)
    return None
