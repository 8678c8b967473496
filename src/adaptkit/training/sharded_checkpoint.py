"""Checkpoints of a sharded (FSDP) run: accelerate's shards inside adaptkit's atomic protocol.

Every process writes its own shards of the model and the optimizer with ``accelerator.save_state``
into one temporary folder, under ``accelerate/``; after a barrier the main process adds the gathered
trainable weights and the training state (as every checkpoint has, so export, eval and sampling read
it as any other), then writes the manifest, with the SHA-256 of every shard, last, and renames the
folder into place. A shard missing or changed makes the checkpoint incomplete, named in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.errors import UserError
from adaptkit.training import checkpoint as ckpt

if TYPE_CHECKING:
    from accelerate import Accelerator

#: The sub-folder of a sharded checkpoint that holds ``accelerator.save_state``'s files.
SHARDS = "accelerate"


def write_sharded_checkpoint(
    accelerator: "Accelerator",
    root: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    state: dict[str, Any],
    manifest_extra: dict[str, Any],
) -> Path | None:
    """Write ``root/step-NNNNNN`` from every process; its path on the main process, None elsewhere.

    ``trainable`` and ``state`` are the gathered (whole) tensors the main process writes.
    """
    final = root / ckpt.checkpoint_name(step)
    tmp = ckpt.temporary_folder(root, step, "sharded")
    main = accelerator.is_main_process
    with ckpt.removed_on_failure(root, tmp, final):
        if main:
            ckpt.start_temporary(root, tmp)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp / SHARDS))  # every process: its shards and its RNG state
        accelerator.wait_for_everyone()
        if main:
            ckpt.write_main_files(tmp, step, trainable, state)
            extra = {**manifest_extra, "sharded": {"backend": "FSDP", "processes": accelerator.num_processes}}
            ckpt.seal(root, tmp, final, step, extra)
    accelerator.wait_for_everyone()
    return final if main else None


def load_shards(accelerator: "Accelerator", path: Path, manifest: dict[str, Any], option: str = "--resume") -> None:
    """Load a sharded checkpoint's model and optimizer shards into this process (every process calls it).

    A checkpoint written by an unsharded run, or by another number of processes, is a one-line error.
    """
    sharded = manifest.get("sharded")
    if not sharded:
        raise UserError(
            f"{option} {path}: the checkpoint was written by a run without FSDP; resume it the way it was launched"
        )
    if int(sharded.get("processes", 0)) != accelerator.num_processes:
        raise UserError(
            f"{option} {path}: the checkpoint is sharded over {sharded.get('processes')} processes, "
            f"this run has {accelerator.num_processes}; resume with {sharded.get('processes')}"
        )
    accelerator.load_state(str(path / SHARDS))


def refuse_sharded_checkpoint(path: Path, manifest: dict[str, Any], option: str = "--resume") -> None:
    """One line when an unsharded run is asked to resume a sharded checkpoint."""
    if manifest.get("sharded"):
        processes = manifest["sharded"].get("processes")
        raise UserError(
            f"{option} {path}: the checkpoint is sharded by FSDP over {processes} processes; "
            "resume it with the same FSDP launch"
        )
