"""Checkpoints of a sharded (FSDP or DeepSpeed) run: accelerate's shards inside adaptkit's atomic protocol.

Every process writes its own shards of the model and the optimizer with ``accelerator.save_state``
into one temporary folder, under ``accelerate/`` (FSDP: ``torch.distributed.checkpoint`` files;
DeepSpeed: the engine's checkpoint, its frozen weights left out); after a barrier the main process adds the gathered
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
from adaptkit.training.sharding import backend_name, sharding_backend

if TYPE_CHECKING:
    from accelerate import Accelerator

#: The sub-folder of a sharded checkpoint that holds ``accelerator.save_state``'s files.
SHARDS = "accelerate"
#: How each backend's engine saves and loads: DeepSpeed keeps the frozen weights (the base, which the
#: run loads anyway) out of its checkpoint, so an adapter run's checkpoints are adapter-sized.
_SAVE_OPTIONS = {"DEEPSPEED": {"exclude_frozen_parameters": True}}
_LOAD_OPTIONS = {"DEEPSPEED": {"load_module_strict": False}}


def _sharding(accelerator: "Accelerator") -> dict[str, Any]:
    """The manifest's record of how the checkpoint is sharded."""
    backend = sharding_backend(accelerator) or "none"
    record: dict[str, Any] = {"backend": backend, "processes": accelerator.num_processes}
    if backend == "DEEPSPEED":
        record["zero_stage"] = int(accelerator.state.deepspeed_plugin.zero_stage)
    return record


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
        options = _SAVE_OPTIONS.get(sharding_backend(accelerator) or "", {})
        accelerator.save_state(str(tmp / SHARDS), **options)  # every process: its shards and its RNG state
        accelerator.wait_for_everyone()
        if main:
            ckpt.write_main_files(tmp, step, trainable, state)
            extra = {**manifest_extra, "sharded": _sharding(accelerator)}
            ckpt.seal(root, tmp, final, step, extra)
    accelerator.wait_for_everyone()
    return final if main else None


def load_shards(accelerator: "Accelerator", path: Path, manifest: dict[str, Any], option: str = "--resume") -> None:
    """Load a sharded checkpoint's model and optimizer shards into this process (every process calls it).

    A checkpoint written by an unsharded run, by another backend (or ZeRO stage), or by another number
    of processes, is a one-line error.
    """
    sharded = manifest.get("sharded")
    here = _sharding(accelerator)
    name = backend_name(here["backend"])
    if not sharded:
        raise UserError(
            f"{option} {path}: the checkpoint was written by a run without {name}; resume it the way it was launched"
        )
    if sharded.get("backend", "FSDP") != here["backend"] or sharded.get("zero_stage") != here.get("zero_stage"):
        raise UserError(
            f"{option} {path}: the checkpoint is sharded by {_described(sharded)}, this run by {_described(here)}; "
            "resume it with the launch that wrote it"
        )
    if int(sharded.get("processes", 0)) != accelerator.num_processes:
        raise UserError(
            f"{option} {path}: the checkpoint is sharded over {sharded.get('processes')} processes, "
            f"this run has {accelerator.num_processes}; resume with {sharded.get('processes')}"
        )
    accelerator.load_state(str(path / SHARDS), **_LOAD_OPTIONS.get(here["backend"], {}))


def _described(sharding: dict[str, Any]) -> str:
    """``FSDP`` or ``DeepSpeed ZeRO-2``."""
    backend = sharding.get("backend", "FSDP")
    stage = sharding.get("zero_stage")
    return backend_name(backend) + (f" ZeRO-{stage}" if stage else "")


def refuse_sharded_checkpoint(path: Path, manifest: dict[str, Any], option: str = "--resume") -> None:
    """One line when an unsharded run is asked to resume a sharded checkpoint."""
    if manifest.get("sharded"):
        processes = manifest["sharded"].get("processes")
        how = _described(manifest["sharded"])
        raise UserError(
            f"{option} {path}: the checkpoint is sharded by {how} over {processes} processes; "
            f"resume it with the same {how} launch"
        )
