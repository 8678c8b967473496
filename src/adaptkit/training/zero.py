"""DeepSpeed ZeRO (stages 2 and 3) through accelerate: turning it on, filling its config from the recipe,
and whole views of ZeRO-3's partitioned parameters.

A run uses DeepSpeed when it is launched with an accelerate DeepSpeed config (``accelerate launch
--config_file zero2.yaml``, which sets ``ACCELERATE_USE_DEEPSPEED=true`` and the ``ACCELERATE_DEEPSPEED_*``
settings). The engine steps the optimizer inside ``accelerator.backward`` on the last micro-batch of
each step (accumulation goes through ``accelerator.accumulate`` on every backend); checkpoints are saved
through ``accelerator.save_state`` (:mod:`adaptkit.training.sharded_checkpoint`).

Under ZeRO-2 every process holds the whole weights and a shard of the gradients and optimizer state.
Under ZeRO-3 the weights are partitioned too: :func:`full_parameters` makes them whole for a block,
which is how the EMA, checkpoints, samples and the result read them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from adaptkit.component import Optimizer
    from adaptkit.recipe import TrainSection

#: How DeepSpeed is installed (PyPI has it as a source distribution that imports torch to build).
INSTALL = "pip install wheel && pip install --no-build-isolation 'deepspeed==0.19.8'"


def deepspeed_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether the launcher asked for DeepSpeed (accelerate's ``ACCELERATE_USE_DEEPSPEED``)."""
    env = os.environ if environ is None else environ
    return env.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("true", "1", "yes")


def accelerator_device_options(cuda: bool, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``Accelerator`` keyword arguments that make a CPU machine's processes one group.

    Without CUDA, a DDP or FSDP launch needs ``cpu=True`` (accelerate's MULTI_CPU, gloo). accelerate
    1.15 enters its DeepSpeed path only with ``cpu=False``, and then finds no backend for a CPU
    machine (``_prepare_backend`` names GPU-type ones only) and reports one process although
    DeepSpeed joined the gloo group; naming gloo is what makes it count the processes. DeepSpeed
    0.19.8 runs ZeRO-2 and ZeRO-3 on CPU with gloo (its CPU accelerator's fallback).
    """
    if cuda:
        return {"cpu": False}
    if not deepspeed_requested(environ):
        return {"cpu": True}
    if importlib.util.find_spec("deepspeed") is None:
        raise UserError(f"the launch asks for DeepSpeed (ACCELERATE_USE_DEEPSPEED), which is not installed; {INSTALL}")
    from accelerate.utils import InitProcessGroupKwargs

    return {"cpu": False, "kwargs_handlers": [InitProcessGroupKwargs(backend="gloo")]}


def settle_accumulation_setting(gradient_accumulation: int, environ: dict[str, str] | None = None) -> None:
    """Make the launcher's accumulation setting agree with the recipe's, or refuse in one line.

    ``accelerate launch`` passes a config's ``gradient_accumulation_steps`` as
    ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``, which ``Accelerator`` prefers to its argument. accelerate
    1.15 reads it with ``int()``, so a DeepSpeed config's ``auto`` (which DeepSpeed documents) fails
    there; ``auto`` is dropped from the environment, and the recipe's value is used.
    """
    env = os.environ if environ is None else environ
    value = env.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    if value is None:
        return
    if value.strip().lower() == "auto":
        del env["ACCELERATE_GRADIENT_ACCUMULATION_STEPS"]
        return
    if not value.strip().isdigit() or int(value) != gradient_accumulation:
        raise UserError(
            f"the launcher's gradient_accumulation_steps = {value} disagrees with the recipe's "
            f"train.gradient_accumulation = {gradient_accumulation}; set it to 'auto' in the accelerate config"
        )


def is_deepspeed(accelerator: "Accelerator") -> bool:
    """Whether ``accelerator`` runs DeepSpeed."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def zero_stage(accelerator: "Accelerator") -> int:
    """The ZeRO stage of a DeepSpeed run (0 when it is not one)."""
    if not is_deepspeed(accelerator):
        return 0
    return int(accelerator.state.deepspeed_plugin.zero_stage)


def configure_deepspeed(accelerator: "Accelerator", train: "TrainSection", optimizer: "Optimizer") -> None:
    """Fill the DeepSpeed config's ``auto`` values from the recipe; one line for what adaptkit does not run.

    Models load whole (no ``zero.Init``); ZeRO-3 partitions the denoiser when the engine is built.

    The recipe is the source of the batch size, the accumulation and the gradient clipping: an
    explicit value in the accelerate config that disagrees with it is refused, since the loop draws
    ``train.batch_size`` × ``train.gradient_accumulation`` examples per process and step.
    """
    plugin = accelerator.state.deepspeed_plugin
    stage = int(plugin.zero_stage)
    if stage not in (2, 3):
        raise UserError(f"DeepSpeed zero_stage {stage}: adaptkit runs ZeRO stages 2 and 3; set zero_stage: 2 or 3")
    if not optimizer.runs_on_flat_partitions:
        raise UserError(
            f"train.optimizer = {optimizer.name!r} under DeepSpeed ZeRO: ZeRO hands the optimizer flat "
            "partitions of the weights, which changes what this optimizer computes; use train.optimizer = 'adamw'"
        )
    config = plugin.deepspeed_config
    for precision in ("bf16", "fp16"):
        if str((config.get(precision) or {}).get("enabled", False)).lower() in ("true", "auto"):
            raise UserError(
                f"DeepSpeed with {precision}: adaptkit trains in fp32 under DeepSpeed so far (the engine casts the "
                "denoiser, not its inputs); set mixed_precision: 'no' in the accelerate config, or use FSDP for bf16"
            )
    offload = (config.get("zero_optimization") or {}).get("offload_optimizer") or {}
    if offload.get("device", "none") not in ("none", None):
        raise UserError(
            "DeepSpeed offload_optimizer: ZeRO-Offload needs DeepSpeed's own CPU Adam, and adaptkit builds "
            "the recipe's optimizer; set offload_optimizer_device: none in the accelerate config"
        )
    wanted = {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation,
        "gradient_clipping": float(train.max_grad_norm or 0.0),
    }
    for key, value in wanted.items():
        current = config.get(key, "auto")
        if current == "auto":
            config[key] = value
        elif float(current) != float(value):
            recipe_key = {"train_micro_batch_size_per_gpu": "batch_size", "gradient_clipping": "max_grad_norm"}
            raise UserError(
                f"the DeepSpeed config's {key} = {current} disagrees with the recipe's "
                f"train.{recipe_key.get(key, 'gradient_accumulation')} = {value}; set it to 'auto' there"
            )
    config["train_batch_size"] = train.batch_size * train.gradient_accumulation * accelerator.num_processes
    # accelerate 1.15 registers its DeepSpeed config with transformers for every ZeRO-3 run, whatever
    # zero3_init_flag says, and transformers 5 then loads each model it builds partitioned (empty)
    # under zero.Init: the text encoders that adaptkit runs outside the engine with them. adaptkit
    # loads every model whole and lets the engine partition the denoiser at ``prepare``.
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def is_partitioned(param: torch.Tensor) -> bool:
    """Whether ``param`` is a ZeRO-3 partitioned parameter (its data lives in shards)."""
    return hasattr(param, "ds_id")


def full_shape(param: torch.Tensor) -> tuple[int, ...]:
    """The whole shape of ``param``, partitioned by ZeRO-3 or not."""
    return tuple(param.ds_shape) if is_partitioned(param) else tuple(param.shape)


def full_parameters(params: Iterable[torch.Tensor], modify: bool = False) -> contextlib.AbstractContextManager:
    """Within the block, the ZeRO-3-partitioned ``params`` are whole on every process (a collective:
    every process enters it); others are left as they are.

    With ``modify``, what the main process writes into them is kept (broadcast, then partitioned
    again); without, changes are dropped when the block ends.
    """
    partitioned = [p for p in params if is_partitioned(p)]
    if not partitioned:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=0 if modify else None)
