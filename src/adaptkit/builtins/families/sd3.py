"""``sd3``: Stable Diffusion 3 / 3.5 — an MMDiT transformer trained with rectified flow.

The conditioning is what ``StableDiffusion3Pipeline.encode_prompt`` computes: both CLIP encoders'
penultimate hidden states, concatenated and zero-padded to the transformer's text width, followed by
T5's 256 token states — zeros, as diffusers uses, when T5 is left out (``model.text_encoder_3 =
"none"``, to save its memory, or a base without it) — and the two CLIP pooled outputs concatenated.
Training is flow matching on the base's ``FlowMatchEulerDiscreteScheduler`` (its shift); the VAE's
latents are shifted and scaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adaptkit.builtins.families.sdxl import clip_outputs
from adaptkit.component import Conditioning, ModelFamily, Options

if TYPE_CHECKING:
    import torch
    from diffusers import SchedulerMixin

    from adaptkit.models import SDComponents
    from adaptkit.recipe import ModelSection

#: T5's sequence length in ``StableDiffusion3Pipeline`` (its ``max_sequence_length`` default).
T5_TOKENS = 256
#: The components of a T5-less base (diffusers needs them passed as None).
WITHOUT_T5 = {"text_encoder_3": None, "tokenizer_3": None}


class StableDiffusion3(ModelFamily):
    """SD 3.x: ``StableDiffusion3Pipeline`` with CLIP-L, CLIP-G and (optionally) T5, flow matching."""

    name = "sd3"
    description = "Stable Diffusion 3 / 3.5 (MMDiT transformer, CLIP-L + CLIP-G (+ T5), flow matching)."
    model_spec = ("sd3", "stable-diffusion-3")
    fsdp_blocks = ("JointTransformerBlock",)
    pipeline_class_names = ("StableDiffusion3Pipeline",)
    objective = "flow"
    native_resolution = 1024
    lora_text_encoders = ("text_encoder", "text_encoder_2")  # the CLIP encoders, as diffusers' SD3 LoRA
    kohya_layout = False  # SD 3 LoRAs go out in diffusers' format (StableDiffusion3Pipeline.load_lora_weights)

    def __init__(self, options: "Options | None" = None) -> None:
        super().__init__(options)
        self.joint_width = 4096  # the transformer's text width, read from the loaded model by bind()

    def pipeline_class(self) -> type:
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline

    def load_options(self, model: "ModelSection", model_index: dict[str, Any] | None) -> dict[str, Any]:
        """T5 left out when the recipe says ``model.text_encoder_3 = "none"``, or the base has none
        (``[null, null]`` in its index, which diffusers 0.42's loader still asks to be passed)."""
        absent = model_index is not None and not any(model_index.get("text_encoder_3") or [None])
        return dict(WITHOUT_T5) if model.text_encoder_3 == "none" or absent else {}

    def training_scheduler(self, scheduler_config: dict[str, Any]) -> "SchedulerMixin":
        """The base's ``FlowMatchEulerDiscreteScheduler`` (the table the flow-matching σ are drawn from)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)

    def bind(self, components: "SDComponents") -> None:
        """Remember the transformer's text width (the zeros of an absent T5 have it), and tokenize for T5
        with the pipeline's 256-token window rather than the tokenizer's own ``model_max_length``."""
        self.joint_width = int(components.denoiser.config.joint_attention_dim)
        if components.tokenizer_3 is not None:
            components.tokenizer_3.model_max_length = T5_TOKENS

    def condition(
        self, text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
    ) -> Conditioning:
        """CLIP-L ⊕ CLIP-G penultimate states padded to the text width, then T5's states (or zeros);
        pooled L ⊕ G."""
        import torch

        clip_states, pooled = clip_outputs(text_encoders[:2], input_ids[:2])
        clip = torch.cat(clip_states, dim=-1)
        clip = torch.nn.functional.pad(clip, (0, self.joint_width - clip.shape[-1]))
        if len(text_encoders) > 2:
            t5 = text_encoders[2](input_ids[2], return_dict=False)[0].to(clip.dtype)
        else:  # T5 left out: zeros, as the pipeline uses
            t5 = clip.new_zeros(clip.shape[0], T5_TOKENS, self.joint_width)
        return Conditioning(torch.cat([clip, t5], dim=-2), {"pooled_projections": torch.cat(pooled, dim=-1)})

    def predict(
        self, denoiser: "torch.nn.Module", noisy: "torch.Tensor", timesteps: "torch.Tensor", conditioning: Conditioning
    ) -> "torch.Tensor":
        """The transformer's velocity for noisy latents at ``timesteps``."""
        added = conditioning.added or {}
        return denoiser(
            hidden_states=noisy,
            timestep=timesteps,
            encoder_hidden_states=conditioning.hidden_states,
            pooled_projections=added["pooled_projections"],
            return_dict=False,
        )[0]

    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A ``StableDiffusion3Pipeline`` of the components (T5 when loaded), no progress bar."""
        c = components
        return sd3_pipeline(
            transformer=c.denoiser,
            scheduler=scheduler,
            vae=c.vae,
            text_encoder=c.text_encoder,
            tokenizer=c.tokenizer,
            text_encoder_2=c.text_encoder_2,
            tokenizer_2=c.tokenizer_2,
            text_encoder_3=c.text_encoder_3,
            tokenizer_3=c.tokenizer_3,
        )


def sd3_pipeline(**modules: Any) -> Any:
    """A ``StableDiffusion3Pipeline`` of ``modules`` (transformer, scheduler, vae, the three text encoders
    and tokenizers, T5's None when left out), no progress bar."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline(**modules)
    pipe.set_progress_bar_config(disable=True)
    return pipe
