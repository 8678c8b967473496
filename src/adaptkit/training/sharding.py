"""FSDP through accelerate's FSDP2 plugin: turning it on, the family's wrap policy, gathering full tensors.

A run is sharded when it is launched with an accelerate FSDP config (``accelerate launch --config_file
fsdp.yaml``, which sets ``ACCELERATE_USE_FSDP=true`` and the ``FSDP_*`` settings for every process).
Each process then holds a shard of the denoiser's weights, gradients and optimizer state; checkpoints
are saved through ``accelerator.save_state`` (:mod:`adaptkit.training.sharded_checkpoint`), and the
result is made from the gathered weights.
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


def is_sharded(accelerator: "Accelerator") -> bool:
    """Whether ``accelerator`` runs FSDP."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


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
    if not is_sharded(accelerator):
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


def refuse_unsharded_features(recipe: "Recipe", method: "Method") -> None:
    """One line for each recipe feature that does not run sharded yet (under FSDP only)."""
    if method.trains_text_encoder:
        raise UserError(
            f"method {method.name!r} trains a text encoder, which adaptkit does not shard with FSDP; "
            "train the denoiser only under FSDP, or launch with DDP"
        )
    if recipe.validation.every:
        raise UserError(
            "[validation] every: the validation loss is not computed under FSDP yet; "
            "set validation.every = 0, or launch with DDP"
        )
    if recipe.train.compile:
        raise UserError("train.compile with FSDP is not supported by adaptkit yet; set train.compile = false")


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
    """``state`` with every sharded tensor (a DTensor) gathered whole, on the CPU.

    A collective: every process calls it, with the same keys in the same order.
    """
    return {
        key: whole(value).detach().cpu() if isinstance(value, torch.Tensor) else value for key, value in state.items()
    }


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself, or a sharded one (a DTensor) gathered whole: a collective."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def trained_parameters(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters ``optimizer`` steps, in order: after FSDP2's ``fully_shard`` these are the sharded
    parameters accelerate put in place of the ones the method returned."""
    return [param for group in optimizer.param_groups for param in group["params"]]
