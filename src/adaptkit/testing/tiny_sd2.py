"""A tiny SD 2.x pipeline built in code: the tiny SD1 layout with an OpenCLIP-style text encoder
(``gelu``), linear attention projections and a v-prediction scheduler, as SD 2.1 at 768 px has.

For tests of the ``sd2`` family: it loads with ``StableDiffusionPipeline.from_pretrained`` offline
and samples at 64 px. Random weights from ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import (
    IMAGE_SIZE,
    TEXT_WIDTH,
    UNET_CHANNELS,
    build_tiny_scheduler,
    build_tiny_tokenizer,
    build_tiny_vae,
    tiny_text_config,
)

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline


def build_tiny_sd2_pipeline(seed: int = 0) -> "StableDiffusionPipeline":
    """The tiny SD 2.x pipeline with random weights drawn from ``seed`` (DDPM, v-prediction)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from adaptkit.builtins.families.sd1 import assemble_pipeline

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            block_out_channels=UNET_CHANNELS,
            layers_per_block=2,
            cross_attention_dim=TEXT_WIDTH,
            attention_head_dim=(2, 4, 4, 4),
            use_linear_projection=True,
            norm_num_groups=8,
        )
        vae = build_tiny_vae()
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, hidden_act="gelu"))
    return assemble_pipeline(vae, text_encoder, tokenizer, unet, build_tiny_scheduler("v_prediction"))


def save_tiny_sd2_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny SD 2.x pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_sd2_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
