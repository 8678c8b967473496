"""Optimizers (AdamW, 8-bit AdamW) and learning-rate schedules."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import torch

from adaptkit.errors import UserError
from adaptkit.recipe import TrainSection


def build_optimizer(params: Iterable[torch.nn.Parameter], train: TrainSection) -> torch.optim.Optimizer:
    """``adamw`` (torch, fused on CUDA, foreach otherwise) or ``adamw8bit`` (bitsandbytes)."""
    params = list(params)
    if not params:
        raise UserError("method: no trainable parameters (check method.options.target_modules)")
    kwargs = dict(
        lr=train.learning_rate,
        betas=(train.adam_beta1, train.adam_beta2),
        eps=train.adam_epsilon,
        weight_decay=train.weight_decay,
    )
    if train.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except Exception as exc:  # ImportError, or a broken native library
            raise UserError(
                f"train.optimizer = 'adamw8bit' needs bitsandbytes, which failed to import ({exc}); "
                "pip install bitsandbytes, or use optimizer = 'adamw'"
            ) from exc
        return bnb.optim.AdamW8bit(params, **kwargs)
    on_cuda = all(p.is_cuda for p in params)
    if on_cuda and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    return torch.optim.AdamW(params, foreach=True, **kwargs)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, train: TrainSection):
    """diffusers' ``get_scheduler`` by name, stepped once per optimizer step."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        train.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=train.lr_warmup_steps,
        num_training_steps=train.steps,
    )
