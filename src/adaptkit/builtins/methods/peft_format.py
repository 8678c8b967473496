"""Methods whose result is saved in peft's own adapter format: LoHa, and plugins' LoKr, OFT, ...

``adapter_config.json`` + ``adapter_model.safetensors``, as ``PeftModel.save_pretrained`` writes
them. diffusers loads only LoRA, so :meth:`PeftFormatMethod.apply` injects the saved config into
the pipeline's UNet and loads the weights with peft. A subclass names its peft config class and
builds the config to inject (:meth:`PeftMethod.unet_config`); nothing else.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.builtins.methods.peft_common import PeftMethod
from adaptkit.errors import UserError
from adaptkit.interop.peft_files import (
    ADAPTER_NAME,
    adapter_state_dict,
    denoiser_of,
    has_adapter,
    keep_training_mode,
    load_adapter,
    read_peft_config,
    read_safetensors,
    saved_weights,
)
from adaptkit.interop.peft_files import (
    PEFT_CONFIG_NAME as CONFIG_NAME,
)
from adaptkit.interop.peft_files import (
    PEFT_WEIGHT_NAME as WEIGHT_NAME,
)

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from peft import PeftConfig

    from adaptkit.models import SDComponents


class PeftFormatMethod(PeftMethod):
    """A UNet adapter saved and loaded in the peft adapter format."""

    @classmethod
    @abstractmethod
    def peft_config_class(cls) -> type["PeftConfig"]:
        """The peft config class a saved result must hold (e.g. ``peft.LoHaConfig``)."""

    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (peft naming)."""
        from safetensors.torch import save_file

        if not has_adapter(components.unet):
            raise RuntimeError(f"{self.name}.save: the UNet has no adapter (was prepare() called?)")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(adapter_state_dict(components.unet), str(out_dir / WEIGHT_NAME), metadata={"format": "pt"})
        components.unet.peft_config[ADAPTER_NAME].save_pretrained(str(out_dir))

    def apply(self, pipeline: "DiffusionPipeline", saved_dir: Path) -> "DiffusionPipeline":
        """Inject the saved config into the pipeline's denoiser and load its weights exactly."""
        saved_dir = Path(saved_dir)
        weights = saved_weights(saved_dir, WEIGHT_NAME, self.name)
        config_path = saved_dir / CONFIG_NAME
        if not config_path.is_file():
            raise UserError(f"{saved_dir}: no {CONFIG_NAME} beside {WEIGHT_NAME}")
        state, _ = read_safetensors(weights)
        config = read_peft_config(config_path, self.peft_config_class())
        name, denoiser = denoiser_of(pipeline)
        with keep_training_mode(denoiser):
            load_adapter(denoiser, config, state, weights, "UNet" if name == "unet" else name)
        return pipeline
