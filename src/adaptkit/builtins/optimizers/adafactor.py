"""``adafactor``: transformers' Adafactor (factored second moments: little optimizer memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.builtins.optimizers.requirement import import_package
from adaptkit.component import Optimizer, Options

if TYPE_CHECKING:
    import torch

    from adaptkit.recipe import TrainSection


class AdafactorOptions(Options):
    scale_parameter: bool = Field(False, description="Scale the step by the parameter's RMS.")
    relative_step: bool = Field(False, description="Adafactor's own time-dependent step (ignores learning_rate).")
    warmup_init: bool = Field(False, description="With relative_step: warm the step up from zero.")
    clip_threshold: float = Field(1.0, gt=0, description="Clips the update's RMS.")


class AdafactorOptimizer(Optimizer):
    """``transformers.optimization.Adafactor`` at ``train.learning_rate`` (unless relative_step)."""

    name = "adafactor"
    description = "Adafactor (transformers): factored state, the least optimizer memory."
    requires = "transformers"
    Options = AdafactorOptions
    options: AdafactorOptions

    def build(self, params: "list[torch.nn.Parameter]", train: "TrainSection") -> "torch.optim.Optimizer":
        """Adafactor with the options; ``train.weight_decay`` applies."""
        optimization = import_package("transformers.optimization", self.name, "transformers", extra="dev")
        o = self.options
        return optimization.Adafactor(
            params,
            lr=None if o.relative_step else train.learning_rate,
            clip_threshold=o.clip_threshold,
            weight_decay=train.weight_decay,
            scale_parameter=o.scale_parameter,
            relative_step=o.relative_step,
            warmup_init=o.warmup_init,
        )
