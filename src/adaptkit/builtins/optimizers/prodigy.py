"""``prodigy``: Prodigy (prodigyopt), which estimates the step size itself; set ``train.learning_rate = 1.0``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.builtins.optimizers.requirement import import_package
from adaptkit.component import Optimizer, Options

if TYPE_CHECKING:
    import torch

    from adaptkit.recipe import TrainSection


class ProdigyOptions(Options):
    d_coef: float = Field(1.0, gt=0, description="Scales the estimated step size (below 1: smaller steps).")
    use_bias_correction: bool = Field(False, description="Adam-style bias correction (prodigyopt's option).")
    safeguard_warmup: bool = Field(False, description="Guards the estimate during learning-rate warm-up.")
    decouple: bool = Field(True, description="Decoupled (AdamW-style) weight decay.")


class ProdigyOptimizer(Optimizer):
    """``prodigyopt.Prodigy`` with the recipe's betas, eps and weight decay."""

    name = "prodigy"
    description = "Prodigy (prodigyopt): learns its own step size; use learning_rate = 1.0."
    requires = "prodigyopt"
    Options = ProdigyOptions
    options: ProdigyOptions

    def build(self, params: "list[torch.nn.Parameter]", train: "TrainSection") -> "torch.optim.Optimizer":
        """Prodigy at ``train.learning_rate`` (its multiplier; 1.0 is usual)."""
        prodigyopt = import_package("prodigyopt", self.name, "prodigyopt")
        return prodigyopt.Prodigy(
            params,
            lr=train.learning_rate,
            betas=(train.adam_beta1, train.adam_beta2),
            eps=train.adam_epsilon,
            weight_decay=train.weight_decay,
            d_coef=self.options.d_coef,
            use_bias_correction=self.options.use_bias_correction,
            safeguard_warmup=self.options.safeguard_warmup,
            decouple=self.options.decouple,
        )
