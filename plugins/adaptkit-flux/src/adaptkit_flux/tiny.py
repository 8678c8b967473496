"""A tiny Flux.1-dev pipeline built in code: CLIP-L (pooled) and a tiny T5 with tokenizers built in code
(no Hub), a ``FluxTransformer2DModel`` with one double block (and ``single_blocks`` single blocks)
and guidance embedding, the 16-channel VAE with Flux's scale and shift, and Flux's scheduler with
resolution-dependent shift.

For tests and the smoke recipe: it loads with ``FluxPipeline.from_pretrained`` offline and samples
at 32-64 px. Random weights from ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import build_tiny_tokenizer, tiny_text_config
from adaptkit.testing.tiny_sd3 import LATENT_CHANNELS, build_tiny_16_channel_vae, build_tiny_t5, build_tiny_t5_tokenizer

if TYPE_CHECKING:
    from diffusers import FluxPipeline

CLIP_WIDTH = 32
T5_WIDTH = 64
#: Flux.1-dev's scheduler (``scheduler/scheduler_config.json``).
SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}


def build_tiny_flux_pipeline(seed: int = 0, single_blocks: int = 1) -> "FluxPipeline":
    """The tiny Flux pipeline with random weights drawn from ``seed``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    t5_tokenizer = build_tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=4 * LATENT_CHANNELS,  # 2x2 patches of the latents, packed
            num_layers=1,
            num_single_layers=single_blocks,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=T5_WIDTH,
            pooled_projection_dim=CLIP_WIDTH,
            guidance_embeds=True,
            axes_dims_rope=(2, 2, 4),
        )
        vae = build_tiny_16_channel_vae(scaling_factor=0.3611, shift_factor=0.1159)
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, CLIP_WIDTH))
        t5 = build_tiny_t5(t5_tokenizer, T5_WIDTH)
    from adaptkit_flux.family import flux_pipeline

    return flux_pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def save_tiny_flux_pipeline(path: str | Path, seed: int = 0, single_blocks: int = 1) -> Path:
    """Build the tiny Flux pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_flux_pipeline(seed, single_blocks).save_pretrained(path, safe_serialization=True)
    return path
