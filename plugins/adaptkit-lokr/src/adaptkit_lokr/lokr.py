"""LoKr (low-rank Kronecker product, LyCORIS) through peft's ``LoKrConfig``.

The update of a weight is ``kron(w1, w2_a @ w2_b) * alpha / rank``; saved in the peft adapter
format (``adapter_config.json`` + ``adapter_model.safetensors``) by adaptkit's
:class:`~adaptkit.builtins.methods.peft_format.PeftFormatMethod`, as LoHa is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from adaptkit import PeftFormatMethod
from pydantic import Field

from adaptkit_lokr._options import NoImportOptions

if TYPE_CHECKING:
    from peft import LoKrConfig


class LokrOptions(NoImportOptions):
    """LoKr options (peft ``LoKrConfig``)."""

    module_dropout: float = Field(0.0, ge=0, lt=1, description="Probability of skipping a whole LoKr module.")
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout over the rank dimension in training.")
    decompose_both: bool = Field(False, description="Also decompose the left Kronecker factor into two low-rank ones.")
    decompose_factor: int = Field(
        -1, ge=-1, description="Kronecker factor size (LyCORIS 'factor'); -1 picks the most balanced split."
    )
    use_effective_conv2d: bool = Field(False, description="Parameter-efficient decomposition for k>1 convs.")
    init_weights: bool = Field(True, description="peft init_weights: true (update starts at zero) or false (tests).")


class LokrMethod(PeftFormatMethod):
    """LoKr adapters on the UNet's attention, optionally its convs."""

    name = "lokr"
    description = "LoKr (Kronecker-product) adapters via peft; saved in the peft adapter format."
    Options: ClassVar[type[LokrOptions]] = LokrOptions
    options: LokrOptions

    def unet_config(self) -> "LoKrConfig":
        """LoKr on the configured UNet targets."""
        from peft import LoKrConfig

        return LoKrConfig(
            r=self.options.rank,
            alpha=self.options.scale_alpha,
            rank_dropout=self.options.rank_dropout,
            module_dropout=self.options.module_dropout,
            decompose_both=self.options.decompose_both,
            decompose_factor=self.options.decompose_factor,
            target_modules=self.options.unet_targets(),
            use_effective_conv2d=self.options.use_effective_conv2d,
            init_weights=self.options.init_weights,
        )

    @classmethod
    def peft_config_class(cls) -> type["LoKrConfig"]:
        """Saved LoKr results hold a ``peft.LoKrConfig``."""
        from peft import LoKrConfig

        return LoKrConfig
