"""``sd1``: the Stable Diffusion v1 layout — one CLIP text encoder, a UNet, DDPM noise.

``StableDiffusionPipeline`` folders whose text encoder is OpenAI's CLIP (``quick_gelu``) load
through it; a single-file checkpoint is recognised by the original layout's key prefixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from adaptkit.component import Conditioning, ModelFamily

if TYPE_CHECKING:
    import torch
    from diffusers import SchedulerMixin

    from adaptkit.models import SDComponents

#: The text encoder activation of OpenCLIP (SD 2.x); OpenAI's CLIP (SD 1.x) uses ``quick_gelu``.
OPEN_CLIP_ACTIVATION = "gelu"


class StableDiffusion1(ModelFamily):
    """Stable Diffusion v1.x: ``StableDiffusionPipeline`` with one CLIP text encoder."""

    name = "sd1"
    description = "Stable Diffusion v1.x (one CLIP text encoder, UNet, DDPM/epsilon); StableDiffusionPipeline."
    pipeline_class_names = ("StableDiffusionPipeline",)
    fallback = True
    bench_models = ("testing:sd15-random", "testing:tiny-sd")
    single_file_text_encoders = {"text_encoder": ("clip", "cond_stage_model.transformer.")}

    def recognises(self, model_index: dict[str, Any], component_config: Callable[[str], dict[str, Any]]) -> bool:
        """A ``StableDiffusionPipeline`` folder whose text encoder is not OpenCLIP's."""
        return super().recognises(model_index, component_config) and not _open_clip(component_config)

    def recognises_keys(self, keys: Iterable[str]) -> bool:
        """The original SD layout: ``model.diffusion_model.*`` with a CLIP ``cond_stage_model.transformer``."""
        names = list(keys)
        return any(k.startswith("model.diffusion_model.") for k in names) and not any(
            k.startswith(("conditioner.", "cond_stage_model.model.")) for k in names
        )

    def pipeline_class(self) -> type:
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

    def condition(
        self, text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
    ) -> Conditioning:
        """The text encoder's last hidden states (no pooled output, no extra inputs)."""
        (encoder,), (ids,) = text_encoders, input_ids
        return Conditioning(encoder(ids, return_dict=False)[0])

    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A ``StableDiffusionPipeline``: no safety checker, no progress bar."""
        c = components
        return assemble_pipeline(c.vae, c.text_encoder, c.tokenizer, c.unet, scheduler)


def _open_clip(component_config: Callable[[str], dict[str, Any]]) -> bool:
    return component_config("text_encoder").get("hidden_act") == OPEN_CLIP_ACTIVATION


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
