"""``sdxl``: Stable Diffusion XL (base 1.0) — two text encoders, a UNet with micro-conditioning.

The conditioning is what ``StableDiffusionXLPipeline.encode_prompt`` computes: each encoder's
penultimate hidden states, concatenated, and the second encoder's projected pooled output
(``text_embeds``). Each training image adds its ``time_ids`` — original size, crop top-left and
target size, as the data pipeline and the buckets made it — SDXL's micro-conditioning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from adaptkit.component import Conditioning, ModelFamily

if TYPE_CHECKING:
    import torch
    from diffusers import SchedulerMixin

    from adaptkit.models import SDComponents


class StableDiffusionXL(ModelFamily):
    """SDXL: ``StableDiffusionXLPipeline`` with CLIP-L and OpenCLIP-bigG text encoders."""

    name = "sdxl"
    description = (
        "Stable Diffusion XL (two text encoders, pooled + time-id micro-conditioning); StableDiffusionXLPipeline."
    )
    pipeline_class_names = ("StableDiffusionXLPipeline",)
    model_spec = ("sdxl_base_v1-0", "stable-diffusion-xl-v1-base")
    native_resolution = 1024
    bench_models = ("testing:sdxl-random", "testing:tiny-sdxl")
    single_file_text_encoders = {
        "text_encoder": ("clip", "conditioner.embedders.0.transformer."),
        "text_encoder_2": ("openclip", "conditioner.embedders.1.model."),
    }

    def recognises_keys(self, keys: Iterable[str]) -> bool:
        """The original SDXL layout: a UNet under ``model.diffusion_model.``, encoders under ``conditioner.``."""
        names = list(keys)
        return any(k.startswith("model.diffusion_model.") for k in names) and any(
            k.startswith("conditioner.embedders.") for k in names
        )

    def pipeline_class(self) -> type:
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline

    def condition(
        self, text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
    ) -> Conditioning:
        """Penultimate hidden states of both encoders, concatenated; the second's pooled projection."""
        import torch

        hidden, pooled = clip_outputs(text_encoders, input_ids)
        return Conditioning(torch.cat(hidden, dim=-1), {"text_embeds": pooled[-1]})

    def image_conditioning(self, geometry: "torch.Tensor", dtype: "torch.dtype") -> dict[str, "torch.Tensor"]:
        """``time_ids``: (original h, w, crop top, left, target h, w) per image, diffusers' order."""
        return {"time_ids": geometry.to(dtype)}

    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A ``StableDiffusionXLPipeline`` of the components: no watermark, no progress bar.

        ``force_zeros_for_empty_prompt`` (zero negative conditioning for an empty negative prompt)
        is the base pipeline's own setting, so the pipeline samples as diffusers' loader would.
        """
        c = components
        settings = c.extra.get("pipeline_config", {})
        return sdxl_pipeline(
            vae=c.vae,
            text_encoder=c.text_encoder,
            text_encoder_2=c.text_encoder_2,
            tokenizer=c.tokenizer,
            tokenizer_2=c.tokenizer_2,
            unet=c.unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=settings.get("force_zeros_for_empty_prompt", True),
        )


def sdxl_pipeline(*, force_zeros_for_empty_prompt: bool = True, **modules: Any) -> Any:
    """A ``StableDiffusionXLPipeline`` of ``modules`` (vae, both text encoders and tokenizers, unet,
    scheduler): no watermark, no progress bar."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        **modules, force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, add_watermarker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clip_outputs(
    text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
) -> tuple[list["torch.Tensor"], list["torch.Tensor"]]:
    """Each CLIP encoder's penultimate hidden states and its first output (``text_embeds`` of a projection
    encoder), as diffusers' SDXL and SD 3 ``encode_prompt`` take them (no clip skip)."""
    hidden, pooled = [], []
    for encoder, ids in zip(text_encoders, input_ids, strict=True):
        output = encoder(ids, output_hidden_states=True, return_dict=True)
        hidden.append(output.hidden_states[-2])
        pooled.append(output[0])
    return hidden, pooled
