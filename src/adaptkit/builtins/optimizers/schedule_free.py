"""``schedule-free-adamw``: schedule-free AdamW (Defazio et al., the ``schedulefree`` package).

It trains at one point and averages toward another; the averaged weights are the ones to sample and
save. While they are read, :meth:`ScheduleFreeAdamW.evaluating` switches the optimizer to them
(``optimizer.eval()``) and back, restoring the training weights from a copy so that a run that samples
mid-way stays bit-identical to one resumed from a checkpoint. Use ``lr_scheduler = "constant"``: the
method replaces the schedule (its own warm-up is ``warmup_steps``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.builtins.optimizers.adamw import adam_settings
from adaptkit.builtins.optimizers.requirement import import_package
from adaptkit.component import Optimizer, Options

if TYPE_CHECKING:
    import torch

    from adaptkit.recipe import TrainSection


class ScheduleFreeOptions(Options):
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up of the learning rate, in optimizer steps.")


class ScheduleFreeAdamW(Optimizer):
    """``schedulefree.AdamWScheduleFree`` with the recipe's Adam settings."""

    name = "schedule-free-adamw"
    description = "Schedule-free AdamW (schedulefree): no learning-rate schedule; samples the averaged weights."
    requires = "schedulefree"
    Options = ScheduleFreeOptions
    options: ScheduleFreeOptions

    def build(self, params: "list[torch.nn.Parameter]", train: "TrainSection") -> "torch.optim.Optimizer":
        """The optimizer, switched to training mode."""
        schedulefree = import_package("schedulefree", self.name, "schedulefree")
        warmup = self.options.warmup_steps
        optimizer = schedulefree.AdamWScheduleFree(params, warmup_steps=warmup, **adam_settings(train))
        optimizer.train()
        return optimizer

    @contextmanager
    def evaluating(self, optimizer: "torch.optim.Optimizer", params: "list[torch.nn.Parameter]") -> Iterator[None]:
        """The averaged weights in place; afterwards the training weights, bit for bit."""
        import torch

        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds it
        training = [p.detach().clone() for p in params]
        inner.eval()
        try:
            yield
        finally:
            inner.train()
            with torch.no_grad():
                for param, saved in zip(params, training, strict=True):
                    param.copy_(saved)
