"""LoHa (low-rank Hadamard product, LyCORIS) through peft, saved in the peft adapter format.

``adapter_config.json`` + ``adapter_model.safetensors``, as ``PeftModel.save_pretrained``
writes them; diffusers has no LoHa loader, so :meth:`LohaMethod.apply` injects the saved config
into the pipeline's UNet and loads the weights with peft.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from adaptkit.builtins.methods.peft_common import ADAPTER_NAME, AdapterOptions, PeftMethod, has_adapter
from adaptkit.builtins.methods.peft_io import (
    adapter_state_dict,
    keep_training_mode,
    load_adapter,
    read_peft_config,
    read_safetensors,
    refuse_pickles,
)
from adaptkit.errors import UserError

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from peft import LoHaConfig

    from adaptkit.models import SDComponents

WEIGHT_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


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


class LohaMethod(PeftMethod):
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

    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (peft naming)."""
        from safetensors.torch import save_file

        if not has_adapter(components.unet):
            raise RuntimeError("loha.save: the UNet has no LoHa adapter (was prepare() called?)")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(adapter_state_dict(components.unet), str(out_dir / WEIGHT_NAME), metadata={"format": "pt"})
        components.unet.peft_config[ADAPTER_NAME].save_pretrained(str(out_dir))

    def apply(self, pipeline: "StableDiffusionPipeline", saved_dir: Path) -> "StableDiffusionPipeline":
        """Inject the saved LoHa config into ``pipeline.unet`` and load its weights exactly."""
        from peft import LoHaConfig

        saved_dir = Path(saved_dir)
        weights = saved_dir / WEIGHT_NAME
        if not weights.is_file():
            refuse_pickles(saved_dir)
            raise UserError(f"{saved_dir}: no {WEIGHT_NAME} (not a LoHa result folder)")
        config_path = saved_dir / CONFIG_NAME
        if not config_path.is_file():
            raise UserError(f"{saved_dir}: no {CONFIG_NAME} beside {WEIGHT_NAME}")
        state, _ = read_safetensors(weights)
        config = read_peft_config(config_path, LoHaConfig)
        with keep_training_mode(pipeline.unet):
            load_adapter(pipeline.unet, config, state, weights, "UNet")
        return pipeline
