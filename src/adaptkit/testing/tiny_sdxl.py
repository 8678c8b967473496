"""A tiny SDXL pipeline built in code: two CLIP text encoders (the second with a projection, whose
pooled output conditions the UNet), a UNet with ``addition_embed_type="text_time"`` and the tiny VAE.

For tests of model families: it loads with ``StableDiffusionXLPipeline.from_pretrained`` offline
and samples at 64 px. Random weights from ``seed``; the tokenizer is the tiny test tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import (
    IMAGE_SIZE,
    build_tiny_scheduler,
    build_tiny_tokenizer,
    build_tiny_vae,
    tiny_text_config,
)

if TYPE_CHECKING:
    from diffusers import StableDiffusionXLPipeline

#: Widths of the two text encoders (SDXL: 768 and 1280); the UNet attends to both, concatenated.
TEXT_WIDTHS = (16, 32)
#: SDXL's micro-conditioning: original size, crop top-left, target size (2 numbers each).
TIME_IDS = 6
TIME_EMBED_DIM = 8


def build_tiny_sdxl_pipeline(seed: int = 0) -> "StableDiffusionXLPipeline":
    """The tiny SDXL pipeline with random weights drawn from ``seed`` (DDPM scheduler)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=sum(TEXT_WIDTHS),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=TIME_IDS * TIME_EMBED_DIM + TEXT_WIDTHS[1],
            norm_num_groups=8,
        )
        vae = build_tiny_vae()
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, TEXT_WIDTHS[0]))
        text_encoder_2 = CLIPTextModelWithProjection(tiny_text_config(tokenizer, TEXT_WIDTHS[1]))
    from adaptkit.builtins.families.sdxl import sdxl_pipeline

    return sdxl_pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=build_tiny_scheduler(),
    )


def save_tiny_sdxl_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny SDXL pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_sdxl_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
