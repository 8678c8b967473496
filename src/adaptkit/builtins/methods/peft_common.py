"""What the peft-based methods (LoRA, LoHa) share: options, target names, adapter injection.

A :class:`PeftMethod` freezes the base model, injects one adapter named :data:`ADAPTER_NAME`
into the UNet (and optionally every text encoder), and trains only the adapter weights, in
float32 as diffusers' training examples do under mixed precision. Subclasses only say which
peft config to inject and how to save and apply the result (with :mod:`adaptkit.interop.peft_files`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from adaptkit.component import Method, Options
from adaptkit.errors import UserError
from adaptkit.interop.peft_files import ADAPTER_NAME, add_adapter, has_adapter

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig

    from adaptkit.models import SDComponents

#: The UNet's attention projections (self- and cross-attention), as in diffusers' LoRA examples.
ATTENTION_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
#: The UNet's convolutions: ResNet convs and shortcuts, and the transformer blocks' in/out projections
#: (1x1 convs in SD v1), as LoCon/LyCORIS "conv" adapters do.
CONV_MODULES = ("conv1", "conv2", "conv_shortcut", "proj_in", "proj_out")
#: The CLIP text encoder's attention projections.
TEXT_ENCODER_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj")


class AdapterOptions(Options):
    """Options every peft adapter method shares."""

    rank: int = Field(4, ge=1, le=1024, description="Adapter rank.")
    alpha: float | None = Field(None, gt=0, description="Scale numerator (update scaled by alpha/rank); default: rank.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ATTENTION_MODULES),
        min_length=1,
        description="UNet module names (suffixes) that get an adapter.",
    )
    conv: bool = Field(False, description=f"Also adapt the UNet's convolutions ({', '.join(CONV_MODULES)}).")
    init_from: str | None = Field(
        None,
        description="Start from this kohya LoRA / LyCORIS LoHa .safetensors file (as sd-scripts' --network_weights); "
        "rank, alpha and targets must match it (adaptkit import prints them).",
    )

    @property
    def scale_alpha(self) -> float:
        """``alpha``, or ``rank`` when unset (scale 1)."""
        return float(self.alpha) if self.alpha is not None else float(self.rank)

    def unet_targets(self) -> list[str]:
        """``target_modules`` plus the conv modules when ``conv`` is on, without duplicates."""
        extra = CONV_MODULES if self.conv else ()
        return list(dict.fromkeys([*self.target_modules, *extra]))


class PeftMethod(Method):
    """A method that trains a peft adapter injected into the UNet (and maybe the text encoder)."""

    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    options: AdapterOptions

    @abstractmethod
    def unet_config(self) -> "PeftConfig":
        """The peft config injected into the UNet."""

    def text_encoder_config(self) -> "PeftConfig | None":
        """The peft config injected into the text encoder, or None to leave it frozen."""
        return None

    def prepare(self, components: "SDComponents") -> list["torch.nn.Parameter"]:
        """Freeze the base, inject the adapter(s), return the adapter parameters (cast to float32)."""
        import torch

        for module in (components.vae, *components.parts().values()):
            module.requires_grad_(False)
        inject(components.unet, self.unet_config(), "UNet")
        text_config = self.text_encoder_config()
        if text_config is not None:
            chosen = components.family.lora_text_encoders
            for name, encoder in components.text_encoders().items():
                if chosen is None or name in chosen:
                    inject(encoder, text_config, name.replace("_", " "))
        if self.options.init_from:
            from adaptkit.interop.importer import init_from_file

            init_from_file(self.options.init_from, components, self.name)
        params = [
            param for module in components.parts().values() for param in module.parameters() if param.requires_grad
        ]
        for param in params:
            param.data = param.data.to(torch.float32)
        return params


def inject(module: "torch.nn.Module", config: "PeftConfig", what: str) -> None:
    """:func:`add_adapter` for training; a target that matches nothing is a one-line UserError."""
    try:
        add_adapter(module, config)
    except ValueError as exc:
        targets = sorted(config.target_modules) if config.target_modules else []
        raise UserError(
            f"method.options.target_modules: cannot add the adapter to the {what} (targets {targets}): "
            f"{str(exc).splitlines()[0]}"
        ) from exc


__all__ = ["ADAPTER_NAME", "AdapterOptions", "PeftMethod", "has_adapter", "inject"]
