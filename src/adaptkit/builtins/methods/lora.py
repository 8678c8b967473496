"""LoRA through peft, saved in the diffusers format that ``pipe.load_lora_weights`` reads.

The adapter configs (rank, alpha, targets) are stored in the safetensors metadata, so a
non-default alpha loads back exactly, with diffusers' own loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from adaptkit.builtins.methods.peft_common import TEXT_ENCODER_MODULES, AdapterOptions, PeftMethod
from adaptkit.errors import UserError
from adaptkit.interop.peft_files import (
    LORA_METADATA_KEY as METADATA_KEY,
)
from adaptkit.interop.peft_files import (
    LORA_WEIGHT_NAME as WEIGHT_NAME,
)
from adaptkit.interop.peft_files import (
    adapter_config_dict,
    adapter_state_dict,
    denoiser_of,
    has_adapter,
    keep_training_mode,
    load_adapter,
    read_safetensors,
    saved_weights,
    split_parts,
)

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from peft import LoraConfig

    from adaptkit.models import SDComponents


class LoraOptions(AdapterOptions):
    """LoRA options (peft ``LoraConfig``)."""

    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path during training.")
    text_encoder: bool = Field(False, description="Also train LoRA on the text encoder's q/k/v/out projections.")
    init_weights: bool | Literal["gaussian"] = Field(
        True, description="peft init_lora_weights: true (B = 0), 'gaussian', or false (random; for tests)."
    )
    use_dora: bool = Field(
        False,
        description="DoRA (peft use_dora): the weight split into direction (LoRA-updated) and a trained "
        "magnitude per output; exports to diffusers/peft, not kohya.",
    )


class LoraMethod(PeftMethod):
    """Low-rank adapters (LoRA) on the UNet's attention, optionally its convs and the text encoder."""

    name = "lora"
    description = "LoRA adapters via peft; saved in the diffusers LoRA format (pipe.load_lora_weights)."
    Options: ClassVar[type[LoraOptions]] = LoraOptions
    options: LoraOptions

    def __init__(self, options: LoraOptions | None = None) -> None:
        super().__init__(options)
        self.trains_text_encoder = self.options.text_encoder

    def _config(self, targets: list[str]) -> "LoraConfig":
        from peft import LoraConfig

        return LoraConfig(
            r=self.options.rank,
            lora_alpha=self.options.scale_alpha,
            lora_dropout=self.options.dropout,
            target_modules=targets,
            init_lora_weights=self.options.init_weights,
            use_dora=self.options.use_dora,
        )

    def unet_config(self) -> "LoraConfig":
        """LoRA on the configured UNet targets."""
        return self._config(self.options.unet_targets())

    def text_encoder_config(self) -> "LoraConfig | None":
        """LoRA on the text encoder's attention projections when ``text_encoder`` is on."""
        return self._config(list(TEXT_ENCODER_MODULES)) if self.options.text_encoder else None

    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """Write ``pytorch_lora_weights.safetensors`` with ``save_lora_weights`` (peft configs as metadata).

        Keys stay in peft naming (``lora_A``/``lora_B``), as diffusers' own ``save_lora_adapter`` writes
        them: ``convert_state_dict_to_diffusers`` renames only the attention keys, and a file mixing
        both namings (conv LoRA) loses its attention weights in diffusers' loader, which checks one key.
        """
        if not has_adapter(components.unet):
            raise RuntimeError("lora.save: the UNet has no LoRA adapter (was prepare() called?)")
        parts = {name: module for name, module in components.parts().items() if has_adapter(module)}
        layers = {f"{name}_lora_layers": adapter_state_dict(module) for name, module in parts.items()}
        metadata = {f"{name}_lora_adapter_metadata": adapter_config_dict(module) for name, module in parts.items()}
        components.family.pipeline_class().save_lora_weights(
            Path(out_dir), **layers, **metadata, weight_name=WEIGHT_NAME, safe_serialization=True
        )

    def apply(self, pipeline: "DiffusionPipeline", saved_dir: Path) -> "DiffusionPipeline":
        """Load the saved LoRA onto ``pipeline`` (diffusers' ``load_lora_weights`` for a UNet-only LoRA)."""
        saved_dir = Path(saved_dir)
        weights = saved_weights(saved_dir, WEIGHT_NAME, "LoRA")
        state, header = read_safetensors(weights)
        denoiser, _ = denoiser_of(pipeline)
        text_parts = sorted(set(split_parts(state)) - {denoiser})
        try:
            with keep_training_mode(*_pipeline_parts(pipeline, [denoiser, *text_parts]).values()):
                if text_parts:
                    _load_with_text_encoders(pipeline, state, header, weights, text_parts)
                else:
                    pipeline.load_lora_weights(str(saved_dir), weight_name=WEIGHT_NAME)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"{weights}: cannot load this LoRA onto the model ({str(exc).splitlines()[0]})") from exc
        return pipeline


def _pipeline_parts(pipeline: "DiffusionPipeline", names: list[str]) -> dict[str, Any]:
    return {name: getattr(pipeline, name, None) for name in names if getattr(pipeline, name, None) is not None}


def _load_with_text_encoders(
    pipeline: "DiffusionPipeline", state: dict[str, Any], header: dict[str, str], weights: Path, parts: list[str]
) -> None:
    """The denoiser part through diffusers' ``load_lora_adapter``, each text-encoder part through peft.

    diffusers loads a text-encoder LoRA with transformers' ``load_adapter``, which in
    transformers 5.24 refuses peft < 0.22; the result is the same LoRA (same config, same weights).
    """
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from diffusers.utils.peft_utils import get_adapter_name
    from peft import LoraConfig

    metadata = json.loads(header.get(METADATA_KEY, "{}"))
    name, denoiser = denoiser_of(pipeline)
    adapter_name = get_adapter_name(denoiser)
    denoiser.load_lora_adapter(
        {k: v for k, v in state.items() if k.startswith(f"{name}.")},
        prefix=name,
        metadata=metadata or None,
        adapter_name=adapter_name,
    )
    configs, states = split_parts(metadata), split_parts(state)
    encoders = _pipeline_parts(pipeline, parts)
    for part in parts:
        if part not in encoders:
            raise UserError(f"{weights}: has a LoRA for {part}, which this model does not have")
        if not configs.get(part):
            raise UserError(f"{weights}: the {part} LoRA has no adapter config in the file's metadata")
        # Normalise any naming (peft, diffusers, old diffusers) to peft, as diffusers' own loader does.
        text_state = convert_state_dict_to_peft(convert_state_dict_to_diffusers(states[part]))
        load_adapter(
            encoders[part], LoraConfig(**configs[part]), text_state, weights, part.replace("_", " "), adapter_name
        )
