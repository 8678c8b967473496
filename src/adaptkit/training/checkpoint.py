"""Checkpoints: atomic writes, a manifest that marks completion, retention, resume lookup, and a
checkpoint's weights on the base model for sampling and export (:func:`checkpoint_model`).

A checkpoint folder is written under a temporary name, every file is flushed to disk, the
manifest (step, recipe hash, package versions, file hashes) is written last, and the folder is
renamed into place. Only a folder whose manifest exists and whose files match their hashes is
*complete*; resume uses the newest complete one, and retention never deletes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adaptkit.errors import IOFailure, UserError
from adaptkit.training.faults import inject

MANIFEST = "manifest.json"
TRAINABLE = "trainable.safetensors"
STATE = "training_state.pt"
PREFIX = "step-"


class CheckpointWriteError(IOFailure):
    """A checkpoint could not be written (a full disk, a read-only or vanished folder).

    The temporary folder is already removed and earlier checkpoints are untouched; one line,
    exit status 74 (:class:`~adaptkit.errors.IOFailure`), so scripts can tell it from a recipe mistake (2).
    """


@dataclass(frozen=True)
class CheckpointContents:
    """What a checkpoint holds, in memory."""

    step: int
    trainable: dict[str, torch.Tensor]
    state: dict[str, Any]  # optimizer, lr_scheduler, ema, rng
    manifest: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    root: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    state: dict[str, Any],
    manifest_extra: dict[str, Any],
) -> Path:
    """Write ``root/step-NNNNNN`` atomically and return its path.

    An ``OSError`` on the way (ENOSPC, EROFS, ...) removes the temporary folder and becomes a
    :class:`CheckpointWriteError` naming the folder and the newest checkpoint still intact.
    """
    final, tmp = root / checkpoint_name(step), temporary_folder(root, step, str(os.getpid()))
    with removed_on_failure(root, tmp, final):
        start_temporary(root, tmp)
        write_main_files(tmp, step, trainable, state)
        seal(root, tmp, final, step, manifest_extra)
    return final


def temporary_folder(root: Path, step: int, tag: str) -> Path:
    """Where checkpoint ``step`` is written before its rename (``tag`` tells writers apart)."""
    return root / f".tmp-{checkpoint_name(step)}-{tag}"


def start_temporary(root: Path, tmp: Path) -> None:
    """An empty ``tmp`` under ``root`` (a stale one from a crashed write is cleared)."""
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()


def write_main_files(tmp: Path, step: int, trainable: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """The trainable weights (safetensors) and the training state (torch) into ``tmp``."""
    save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, str(tmp / TRAINABLE))
    inject("checkpoint-trainable", step)
    torch.save(state, tmp / STATE)
    inject("checkpoint-state", step)


def seal(root: Path, tmp: Path, final: Path, step: int, manifest_extra: dict[str, Any]) -> None:
    """Flush every file under ``tmp`` (shards in sub-folders included), write the manifest with each
    one's SHA-256 last, and rename ``tmp`` to ``final``: from here on the checkpoint is complete."""
    files = {}
    for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
        _fsync_file(file)
        files[file.relative_to(tmp).as_posix()] = _sha256(file)
    for folder in sorted({p.parent for p in tmp.rglob("*") if p.is_file()}, reverse=True):
        _fsync_dir(folder)
    manifest = {"step": step, "created": time.time(), "files": files, **manifest_extra}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    _fsync_file(tmp / MANIFEST)
    _fsync_dir(tmp)
    inject("checkpoint-manifest", step)
    if final.exists():  # a stale checkpoint of the same step (e.g. a resumed run)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    inject("checkpoint-renamed", step)


@contextlib.contextmanager
def removed_on_failure(root: Path, tmp: Path, final: Path) -> Iterator[None]:
    """Within the block, a failure removes ``tmp``; an ``OSError`` becomes a :class:`CheckpointWriteError`."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        intact = newest_complete(root)
        kept = f"{intact} is intact; resume from it" if intact else "no earlier checkpoint exists"
        raise CheckpointWriteError(
            f"checkpoint {final} could not be written ({exc.strerror or exc}); "
            f"its temporary folder was removed and {kept} after freeing space"
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_problem(path: Path, verify_hashes: bool = True) -> str | None:
    """Why ``path`` is not a complete checkpoint, naming the file at fault (None when it is complete)."""
    if not path.is_dir():
        return "no such checkpoint folder"
    if not (path / MANIFEST).is_file():
        return f"no {MANIFEST} (the write did not finish)"
    manifest = read_manifest(path)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return f"{MANIFEST} is unreadable or not a checkpoint manifest"
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if verify_hashes and _sha256(file) != digest:
            return f"{name} does not match its SHA-256 in {MANIFEST} (corrupt or changed)"
    return None


def is_complete(path: Path, verify_hashes: bool = True) -> bool:
    return checkpoint_problem(path, verify_hashes) is None


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders (complete or not) under ``root``, oldest step first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(PREFIX) and path.name[len(PREFIX) :].isdigit():
            found.append(path)
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def _newest(root: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint under ``root`` and the newer ones skipped, each with its problem."""
    skipped = []
    for path in reversed(list_checkpoints(root)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


#: (skipped, used) pairs already warned about in this process (resume looks its checkpoint up twice).
_warned: set[tuple[str, str]] = set()


def newest_complete(root: Path, warn: bool = False) -> Path | None:
    """The newest complete checkpoint under ``root``. With ``warn``, a newer checkpoint skipped because it
    is incomplete or corrupt is named on stderr with the one used instead (once per process)."""
    path, skipped = _newest(root)
    if warn and path is not None and skipped:
        newest, problem = skipped[0]
        if (str(newest), str(path)) not in _warned:
            _warned.add((str(newest), str(path)))
            others = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            print(
                f"warning: checkpoint {newest} is incomplete or corrupt ({problem}){others}; using {path} instead",
                file=sys.stderr,
            )
    return path


def apply_retention(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints, incomplete ones and stale temp folders."""
    removed = []
    complete = [p for p in list_checkpoints(root) if is_complete(p, verify_hashes=False)]
    protected = set(complete[-max(keep, 1) :])
    newest = int(complete[-1].name[len(PREFIX) :]) if complete else 0
    for path in list_checkpoints(root):
        if path not in protected:
            inject("checkpoint-retention", newest)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for stale in root.glob(".tmp-*") if root.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    return removed


def resume_path(resume: str, root: Path) -> Path:
    """``--resume`` (``"latest"``: the newest complete checkpoint under ``root``) or ``--resume PATH``."""
    if resume != "latest":
        return Path(resume)
    path = newest_complete(root, warn=True)
    if path is None:
        _, skipped = _newest(root)
        why = "; ".join(f"{p.name}: {problem}" for p, problem in skipped) or "it holds none"
        raise UserError(f"--resume: no complete checkpoint in {root} ({why}); run without --resume to start fresh")
    return path


def discard_after(root: Path, step: int) -> list[Path]:
    """Delete checkpoints of steps after ``step`` (left by a run that was resumed from an earlier one)."""
    removed = [p for p in list_checkpoints(root) if int(p.name[len(PREFIX) :]) > step]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def verify_checkpoint(path: Path, option: str = "--resume", verify_hashes: bool = True) -> None:
    """A UserError naming ``option`` (the command-line option that gave ``path``) and the file at fault
    unless ``path`` is a complete checkpoint (every file present, and matching its hash if asked)."""
    if not path.is_dir():
        raise UserError(f"{option} {path}: no such checkpoint folder")
    problem = checkpoint_problem(path, verify_hashes)
    if problem is not None:
        raise UserError(f"{option} {path}: checkpoint is incomplete or corrupt ({problem})")


def load_checkpoint(path: Path, option: str = "--resume", verify_hashes: bool = True) -> CheckpointContents:
    """Load a complete checkpoint; an incomplete or corrupt one is a clear error naming ``option``
    and the file at fault. ``verify_hashes = False``: the caller has just verified them
    (:func:`verify_checkpoint`), e.g. once on the main process for every process."""
    verify_checkpoint(path, option, verify_hashes)
    manifest = read_manifest(path)
    assert manifest is not None
    try:
        trainable = load_file(str(path / TRAINABLE))
        # weights_only: tensors and plain containers only; a pickle that would run code is refused
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # SafetensorError, pickle.UnpicklingError, RuntimeError, ...
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise UserError(f"{option} {path}: cannot load the checkpoint safely ({first})") from exc
    return CheckpointContents(int(manifest["step"]), trainable, state, manifest)


# --------------------------------------------------------------------------- using a checkpoint's weights
