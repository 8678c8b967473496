"""LoHa (low-rank Hadamard product, LyCORIS) through peft, saved in the peft adapter format.

``adapter_config.json`` + ``adapter_model.safetensors`` (see :mod:`.peft_format`); diffusers has
no LoHa loader, so applying a result injects the saved config into the UNet and loads it with peft.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from adaptkit.builtins.methods.peft_common import AdapterOptions
from adaptkit.builtins.methods.peft_format import CONFIG_NAME, WEIGHT_NAME, PeftFormatMethod

if TYPE_CHECKING:
    from peft import LoHaConfig

__all__ = ["CONFIG_NAME", "WEIGHT_NAME", "LohaMethod", "LohaOptions"]


class LohaOptions(AdapterOptions):
    """LoHa options (peft ``LoHaConfig``)."""

    module_dropout: float = Field(
        0.0, ge=0, lt=1, description="Probability of skipping a whole LoHa module in training."
    )
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout over the rank dimension in training.")
    use_effective_conv2d: bool = Field(
        False, description="Parameter-efficient decomposition for k>1 convs (with conv)."
    )
    init_weights: bool = Field(True, description="peft init_weights: true (update starts at zero) or false (tests).")


class LohaMethod(PeftFormatMethod):
    """LoHa adapters on the UNet's attention, optionally its convs."""

    name = "loha"
    description = "LoHa (Hadamard-product) adapters via peft; saved in the peft adapter format."
    Options: ClassVar[type[LohaOptions]] = LohaOptions
    options: LohaOptions

    def unet_config(self) -> "LoHaConfig":
        """LoHa on the configured UNet targets."""
        from peft import LoHaConfig

        return LoHaConfig(
            r=self.options.rank,
            alpha=self.options.scale_alpha,
            rank_dropout=self.options.rank_dropout,
            module_dropout=self.options.module_dropout,
            target_modules=self.options.unet_targets(),
            use_effective_conv2d=self.options.use_effective_conv2d,
            init_weights=self.options.init_weights,
        )

    @classmethod
    def peft_config_class(cls) -> type["LoHaConfig"]:
        """Saved LoHa results hold a ``peft.LoHaConfig``."""
        from peft import LoHaConfig

        return LoHaConfig
