"""The SDXL base 1.0 architecture with random weights: ``adaptkit bench --family sdxl``'s model.

The UNet, VAE, both text encoders' and the scheduler's configs of SDXL base 1.0 ship as JSON in
``adaptkit/testing/sdxl/``; the components are built from them (no download) with random weights,
so step time, memory and FLOPs match the real model's. The tokenizers are the tiny test tokenizer.
Use it as ``model.base = "testing:sdxl-random"`` (about 14 GB on disk once built, in float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.configs import architecture_config, text_config

if TYPE_CHECKING:
    from diffusers import StableDiffusionXLPipeline


def build_sdxl_random_pipeline(seed: int = 0) -> "StableDiffusionXLPipeline":
    """An SDXL-architecture pipeline with random weights drawn from ``seed``."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from adaptkit.builtins.families.sdxl import sdxl_pipeline
    from adaptkit.testing.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(architecture_config("sdxl", "unet"))
        vae = AutoencoderKL.from_config(architecture_config("sdxl", "vae"))
        text_encoder = CLIPTextModel(text_config("sdxl", "text_encoder", tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(text_config("sdxl", "text_encoder_2", tokenizer))
    return sdxl_pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(architecture_config("sdxl", "scheduler")),
    )


def save_sdxl_random_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the random SDXL pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_sdxl_random_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
