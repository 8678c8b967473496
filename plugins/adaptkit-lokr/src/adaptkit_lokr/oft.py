"""OFT (orthogonal fine-tuning) through peft's ``OFTConfig``.

Each adapted weight is multiplied by a learnt block-diagonal orthogonal matrix, which keeps the
angles between its neurons (the "hyperspherical energy") and so the base model's knowledge.
``rank`` is the number of orthogonal blocks per layer (peft's ``r``; the layer's input width must
be divisible by it); ``alpha`` has no meaning for OFT and is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from adaptkit import PeftFormatMethod
from pydantic import Field, field_validator

from adaptkit_lokr._options import NoImportOptions

if TYPE_CHECKING:
    from peft import OFTConfig


class OftOptions(NoImportOptions):
    """OFT options (peft ``OFTConfig``)."""

    module_dropout: float = Field(0.0, ge=0, lt=1, description="Probability of skipping a whole OFT block.")
    coft: bool = Field(False, description="Constrained OFT: keep the rotation within eps of the identity.")
    eps: float = Field(6e-5, gt=0, description="The COFT constraint (with coft).")
    block_share: bool = Field(False, description="Share one orthogonal block across a layer's blocks.")
    init_weights: bool = Field(True, description="peft init_weights: true (identity rotation) or false (tests).")

    @field_validator("alpha")
    @classmethod
    def _no_alpha(cls, value: float | None) -> float | None:
        if value is not None:
            raise ValueError("OFT has no alpha (its update is a rotation); remove the key")
        return value


class OftMethod(PeftFormatMethod):
    """Orthogonal fine-tuning on the UNet's attention, optionally its convs."""

    name = "oft"
    description = "OFT (orthogonal fine-tuning) via peft; rank = blocks per layer; peft adapter format."
    Options: ClassVar[type[OftOptions]] = OftOptions
    options: OftOptions

    def unet_config(self) -> "OFTConfig":
        """OFT with ``rank`` blocks per adapted layer."""
        from peft import OFTConfig

        return OFTConfig(
            r=self.options.rank,
            oft_block_size=0,
            module_dropout=self.options.module_dropout,
            coft=self.options.coft,
            eps=self.options.eps,
            block_share=self.options.block_share,
            target_modules=self.options.unet_targets(),
            init_weights=self.options.init_weights,
        )

    @classmethod
    def peft_config_class(cls) -> type["OFTConfig"]:
        """Saved OFT results hold a ``peft.OFTConfig``."""
        from peft import OFTConfig

        return OFTConfig
