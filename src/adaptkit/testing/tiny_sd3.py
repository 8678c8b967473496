"""A tiny SD 3.x pipeline built in code: two CLIP text encoders with projections (CLIP-L and CLIP-G
in SD 3.5), no T5 (``text_encoder_3 = None``, which diffusers allows), a two-layer MMDiT
``SD3Transformer2DModel``, a 16-channel VAE with a shift factor, and a flow-matching scheduler.

For tests of the ``sd3`` family: it loads with ``StableDiffusion3Pipeline.from_pretrained`` offline
and samples at 64 px. Random weights from ``seed``; the tokenizers are the tiny test tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import IMAGE_SIZE, VAE_CHANNELS, build_tiny_tokenizer, tiny_text_config

if TYPE_CHECKING:
    from diffusers import StableDiffusion3Pipeline

#: Widths of the two CLIP encoders; their pooled outputs are concatenated for the transformer.
TEXT_WIDTHS = (16, 32)
#: The transformer's text width (T5's in SD 3.5: 4096); the CLIP hidden states are zero-padded to it.
JOINT_WIDTH = 64
LATENT_CHANNELS = 16


def build_tiny_sd3_pipeline(seed: int = 0) -> "StableDiffusion3Pipeline":
    """The tiny SD 3.x pipeline with random weights drawn from ``seed`` (flow matching, shift 3)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=IMAGE_SIZE // 8,
            patch_size=2,
            in_channels=LATENT_CHANNELS,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=JOINT_WIDTH,
            caption_projection_dim=16,
            pooled_projection_dim=sum(TEXT_WIDTHS),
            out_channels=LATENT_CHANNELS,
            pos_embed_max_size=16,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=VAE_CHANNELS,
            layers_per_block=1,
            norm_num_groups=8,
            latent_channels=LATENT_CHANNELS,
            sample_size=IMAGE_SIZE,
            scaling_factor=1.5305,
            shift_factor=0.0609,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        text_encoder = CLIPTextModelWithProjection(tiny_text_config(tokenizer, TEXT_WIDTHS[0]))
        text_encoder_2 = CLIPTextModelWithProjection(tiny_text_config(tokenizer, TEXT_WIDTHS[1]))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=build_tiny_tokenizer(),
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sd3_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny SD 3.x pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_sd3_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
