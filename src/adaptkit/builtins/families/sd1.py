"""``sd1``: the Stable Diffusion v1 layout — one CLIP text encoder, a UNet, DDPM noise.

``StableDiffusionPipeline`` folders load through it (an SD 2.x folder, same pipeline class, loads
the same way); a single-file checkpoint is recognised by the original layout's key prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from adaptkit.component import Conditioning, ModelFamily

if TYPE_CHECKING:
    import torch
    from diffusers import SchedulerMixin

    from adaptkit.models import SDComponents


class StableDiffusion1(ModelFamily):
    """Stable Diffusion v1.x: ``StableDiffusionPipeline`` with one CLIP text encoder."""

    name = "sd1"
    description = "Stable Diffusion v1.x (one CLIP text encoder, UNet, DDPM/epsilon); StableDiffusionPipeline."
    pipeline_class_names = ("StableDiffusionPipeline",)
    fallback = True

    def recognises_keys(self, keys: Iterable[str]) -> bool:
        """The original SD layout: ``model.diffusion_model.*`` with a ``cond_stage_model`` text encoder."""
        names = list(keys)
        return any(k.startswith("model.diffusion_model.") for k in names) and not any(
            k.startswith("conditioner.") for k in names
        )

    def pipeline_class(self) -> type:
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

    def condition(self, text_encoder: "torch.nn.Module", input_ids: "torch.Tensor") -> Conditioning:
        """The CLIP text encoder's last hidden states (no pooled output, no extra inputs)."""
        return Conditioning(text_encoder(input_ids, return_dict=False)[0])

    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A ``StableDiffusionPipeline``: no safety checker, no progress bar."""
        c = components
        return assemble_pipeline(c.vae, c.text_encoder, c.tokenizer, c.unet, scheduler)


def assemble_pipeline(vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any) -> Any:
    """A ``StableDiffusionPipeline`` of these modules: no safety checker, no progress bar."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
