"""``adamw`` (torch; fused wherever torch has the kernel, CPU included) and ``adamw8bit`` (bitsandbytes)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch

from adaptkit.builtins.optimizers.requirement import import_package
from adaptkit.component import Optimizer

if TYPE_CHECKING:
    from adaptkit.recipe import TrainSection


def adam_settings(train: "TrainSection") -> dict:
    """The recipe's shared Adam settings as keyword arguments."""
    return {
        "lr": train.learning_rate,
        "betas": (train.adam_beta1, train.adam_beta2),
        "eps": train.adam_epsilon,
        "weight_decay": train.weight_decay,
    }


class AdamW(Optimizer):
    """torch's AdamW: fused where torch has the kernel for the parameters' device, else foreach."""

    name = "adamw"
    description = "AdamW (torch; fused kernel where available)."
    runs_on_flat_partitions = True

    def build(self, params: list[torch.nn.Parameter], train: "TrainSection") -> torch.optim.Optimizer:
        """AdamW with the recipe's Adam settings."""
        if _fused_supported(params):
            return torch.optim.AdamW(params, fused=True, **adam_settings(train))
        return torch.optim.AdamW(params, foreach=True, **adam_settings(train))


class AdamW8bit(Optimizer):
    """bitsandbytes' 8-bit AdamW (state in 8 bits: about a quarter of AdamW's memory)."""

    name = "adamw8bit"
    description = "8-bit AdamW (bitsandbytes): optimizer state in a quarter of the memory."
    requires = "bitsandbytes"

    def build(self, params: list[torch.nn.Parameter], train: "TrainSection") -> torch.optim.Optimizer:
        """``bitsandbytes.optim.AdamW8bit`` with the recipe's Adam settings."""
        bnb = import_package("bitsandbytes", self.name, "bitsandbytes")
        return bnb.optim.AdamW8bit(params, **adam_settings(train))


def _fused_supported(params: list[torch.nn.Parameter]) -> bool:
    if "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return False
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # an older torch: fused on CUDA only
        devices = {"cuda"}
    return all(p.device.type in devices and p.dtype.is_floating_point for p in params)
