"""Sharded runs: which backend shards (FSDP2 or DeepSpeed ZeRO), FSDP's switch-on and wrap policy, and
gathering full tensors.

A run is sharded when it is launched with an accelerate FSDP config (``accelerate launch --config_file
fsdp.yaml``, which sets ``ACCELERATE_USE_FSDP=true`` and the ``FSDP_*`` settings for every process) or
a DeepSpeed one (:mod:`adaptkit.training.zero`). Each process then holds a shard of the denoiser's
gradients and optimizer state (and, under FSDP and ZeRO-3, of its weights); checkpoints are saved
through ``accelerator.save_state`` (:mod:`adaptkit.training.sharded_checkpoint`), and the result is
made from the gathered weights.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from adaptkit.component import Method, ModelFamily
    from adaptkit.recipe import Recipe


def fsdp_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether the launcher asked for FSDP (accelerate's ``ACCELERATE_USE_FSDP``)."""
    env = os.environ if environ is None else environ
    return env.get("ACCELERATE_USE_FSDP", "false").lower() in ("true", "1", "yes")


#: The accelerate backends whose state adaptkit saves through ``accelerator.save_state``.
SHARDING_BACKENDS = ("FSDP", "DEEPSPEED")


def sharding_backend(accelerator: "Accelerator") -> str | None:
    """``"FSDP"``, ``"DEEPSPEED"``, or None for an unsharded run (one process, DDP)."""
    name = accelerator.distributed_type.value
    return name if name in SHARDING_BACKENDS else None


def is_fsdp(accelerator: "Accelerator") -> bool:
    """Whether ``accelerator`` runs FSDP."""
    return sharding_backend(accelerator) == "FSDP"


def backend_name(backend: str) -> str:
    """How messages name a sharding backend: ``FSDP``, ``DeepSpeed``."""
    return {"DEEPSPEED": "DeepSpeed"}.get(backend, backend)


def enable_fsdp(accelerator: "Accelerator") -> None:
    """Make a requested FSDP run an FSDP2 run; one line for what adaptkit does not shard.

    accelerate 1.15 turns ``ACCELERATE_USE_FSDP`` into its FSDP backend only for GPU-type process
    groups (``AcceleratorState.__init__`` checks MULTI_GPU, MULTI_XPU…, never MULTI_CPU), although
    torch 2.13's ``fully_shard`` runs on CPU with gloo. On a CPU group the backend is set here, on
    both of accelerate's shared states, with the plugin built from the same ``FSDP_*`` variables
    accelerate reads; everything after that is accelerate's own FSDP2 path.
    """
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if not fsdp_requested():
        return
    state = accelerator.state
    if accelerator.distributed_type == DistributedType.MULTI_CPU:
        plugin = getattr(state, "fsdp_plugin", None) or FullyShardedDataParallelPlugin()
        PartialState().distributed_type = DistributedType.FSDP
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin
        if accelerator.mixed_precision != "no":
            plugin.set_mixed_precision(accelerator.mixed_precision)
    if not is_fsdp(accelerator):
        return
    if state.fsdp_plugin.fsdp_version != 2:
        raise UserError(
            f"FSDP version {state.fsdp_plugin.fsdp_version}: adaptkit shards with FSDP2; "
            "set fsdp_version: 2 in the accelerate config (FSDP_VERSION=2)"
        )
    if getattr(state.fsdp_plugin, "cpu_ram_efficient_loading", False):
        # With it, transformers loads the text encoders empty (on the meta device) on every process but
        # the first, and only the prepared denoiser gets the first process's weights broadcast.
        raise UserError(
            "fsdp_cpu_ram_efficient_loading: adaptkit loads the base on every process, which this setting "
            "leaves empty on all but the first; set it to false in the accelerate config "
            "(FSDP_CPU_RAM_EFFICIENT_LOADING=false)"
        )


def refuse_unsharded_features(recipe: "Recipe", method: "Method", backend: str = "FSDP") -> None:
    """One line for each recipe feature that does not run sharded yet (under ``backend``, FSDP or DeepSpeed)."""
    name = backend_name(backend)
    if method.trains_text_encoder:
        raise UserError(
            f"method {method.name!r} trains a text encoder, which adaptkit does not shard with {name}; "
            f"train the denoiser only under {name}, or launch with DDP"
        )
    if recipe.validation.every:
        raise UserError(
            f"[validation] every: the validation loss is not computed under {name} yet; "
            "set validation.every = 0, or launch with DDP"
        )
    if recipe.train.compile:
        raise UserError(f"train.compile with {name} is not supported by adaptkit yet; set train.compile = false")


def set_wrap_policy(accelerator: "Accelerator", family: "ModelFamily", denoiser: torch.nn.Module) -> list[str]:
    """Shard the denoiser by ``family.fsdp_blocks`` unless the accelerate config names a wrap policy;
    returns the block class names used (empty: the config's own, or none of them in this base)."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    plugin = accelerator.state.fsdp_plugin
    if plugin.auto_wrap_policy is not None:
        return []
    present = {type(module).__name__ for module in denoiser.modules()}
    names = [name for name in family.fsdp_blocks if name in present]
    if names:
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
        plugin.transformer_cls_names_to_wrap = names
    return names


def gathered(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with every sharded tensor (a DTensor) gathered whole, copied to the CPU (a copy: ZeRO-3's
    whole weights are freed when :func:`adaptkit.training.zero.full_parameters` ends).

    A collective: every process calls it, with the same keys in the same order.
    """
    return {
        key: whole(value).detach().to("cpu", copy=True) if isinstance(value, torch.Tensor) else value
        for key, value in state.items()
    }


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself, or a sharded one (a DTensor) gathered whole: a collective."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def trained_parameters(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters ``optimizer`` steps, in order: after FSDP2's ``fully_shard`` these are the sharded
    parameters accelerate put in place of the ones the method returned."""
    return [param for group in optimizer.param_groups for param in group["params"]]
