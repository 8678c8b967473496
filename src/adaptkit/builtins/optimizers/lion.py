"""``lion8bit``: bitsandbytes' 8-bit Lion (sign updates; use a learning rate 3-10x below AdamW's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.builtins.optimizers.requirement import import_package
from adaptkit.component import Optimizer, Options

if TYPE_CHECKING:
    import torch

    from adaptkit.recipe import TrainSection


class LionOptions(Options):
    beta1: float = Field(0.9, ge=0, lt=1, description="Interpolation of the update's momentum.")
    beta2: float = Field(0.99, ge=0, lt=1, description="Decay of the momentum.")


class Lion8bit(Optimizer):
    """``bitsandbytes.optim.Lion8bit``; ``train.weight_decay`` applies."""

    name = "lion8bit"
    description = "Lion with 8-bit state (bitsandbytes); lr 3-10x below AdamW's."
    requires = "bitsandbytes"
    Options = LionOptions
    options: LionOptions

    def build(self, params: "list[torch.nn.Parameter]", train: "TrainSection") -> "torch.optim.Optimizer":
        """Lion8bit at ``train.learning_rate`` with the options' betas."""
        bnb = import_package("bitsandbytes", self.name, "bitsandbytes")
        betas = (self.options.beta1, self.options.beta2)
        return bnb.optim.Lion8bit(params, lr=train.learning_rate, betas=betas, weight_decay=train.weight_decay)
