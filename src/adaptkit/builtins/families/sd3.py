"""``sd3``: Stable Diffusion 3 / 3.5 — an MMDiT transformer trained with rectified flow.

The conditioning is what ``StableDiffusion3Pipeline.encode_prompt`` computes: both CLIP encoders'
penultimate hidden states, concatenated and zero-padded to the transformer's text width, followed by
T5's — zeros of 256 tokens, as diffusers uses without T5 (``model.text_encoder_3 = "none"`` or a base
without it; training with T5 is not built yet) — and the two CLIP pooled outputs concatenated.
Training is flow matching on the base's ``FlowMatchEulerDiscreteScheduler`` (its shift); the VAE's
latents are shifted and scaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adaptkit.builtins.families.sdxl import clip_outputs
from adaptkit.component import Conditioning, ModelFamily

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
    pipeline_class_names = ("StableDiffusion3Pipeline",)
    objective = "flow"
    native_resolution = 1024
    kohya_layout = False  # SD 3 LoRAs go out in diffusers' format (StableDiffusion3Pipeline.load_lora_weights)

    def __init__(self) -> None:
        self.joint_width = 4096  # the transformer's text width, read from the loaded model by bind()

    def pipeline_class(self) -> type:
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline

    def load_options(self, model: "ModelSection", model_index: dict[str, Any] | None) -> dict[str, Any]:
        """T5 left out when the recipe says so or the base has none (``[null, null]`` in its index).

        Training with T5's conditioning is not built yet: a base with T5 and no ``model.text_encoder_3
        = "none"`` is a one-line UserError.
        """
        from adaptkit.errors import UserError

        absent = model_index is not None and not any(model_index.get("text_encoder_3") or [None])
        if model.text_encoder_3 != "none" and not absent:
            raise UserError(
                f"model.base: {model.base} has a T5 text encoder, which adaptkit's sd3 family does not train "
                'with yet; set model.text_encoder_3 = "none" (its conditioning becomes zeros, as diffusers does)'
            )
        return dict(WITHOUT_T5)

    def training_scheduler(self, scheduler_config: dict[str, Any]) -> "SchedulerMixin":
        """The base's ``FlowMatchEulerDiscreteScheduler`` (the table the flow-matching σ are drawn from)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)

    def bind(self, components: "SDComponents") -> None:
        """Remember the transformer's text width (the zeros of an absent T5 have it)."""
        self.joint_width = int(components.denoiser.config.joint_attention_dim)

    def condition(
        self, text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
    ) -> Conditioning:
        """CLIP-L ⊕ CLIP-G penultimate states padded to the text width, then T5's zeros; pooled L ⊕ G."""
        import torch

        clip_states, pooled = clip_outputs(text_encoders, input_ids)
        clip = torch.cat(clip_states, dim=-1)
        clip = torch.nn.functional.pad(clip, (0, self.joint_width - clip.shape[-1]))
        t5 = clip.new_zeros(clip.shape[0], T5_TOKENS, self.joint_width)  # T5 absent (load_options)
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
        """A ``StableDiffusion3Pipeline`` of the components (without T5), no progress bar."""
        from diffusers import StableDiffusion3Pipeline

        c = components
        pipe = StableDiffusion3Pipeline(
            transformer=c.denoiser,
            scheduler=scheduler,
            vae=c.vae,
            text_encoder=c.text_encoder,
            tokenizer=c.tokenizer,
            text_encoder_2=c.text_encoder_2,
            tokenizer_2=c.tokenizer_2,
            **WITHOUT_T5,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe
