"""The Stable Diffusion v1.5 architecture with random weights: the bench's default model.

The UNet, VAE and CLIP text-encoder configs of SD v1.5 ship as JSON in ``adaptkit/testing/sd15/``;
the components are built from them (no download) with random weights, so step time, memory and
FLOPs match the real model's. The tokenizer is the tiny test tokenizer (token ids only matter for
the embedding lookup, which costs nothing). Use it as ``model.base = "testing:sd15-random"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.testing.configs import architecture_config, text_config

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline


def sd15_config(component: str) -> dict[str, Any]:
    """The SD v1.5 config of ``component`` (unet, vae, text_encoder or scheduler)."""
    return architecture_config("sd15", component)


def build_sd15_random_pipeline(seed: int = 0) -> "StableDiffusionPipeline":
    """An SD v1.5-architecture pipeline with random weights drawn from ``seed``."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    from adaptkit.builtins.families.sd1 import assemble_pipeline
    from adaptkit.testing.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(sd15_config("unet"))
        vae = AutoencoderKL.from_config(sd15_config("vae"))
        text_encoder = CLIPTextModel(text_config("sd15", "text_encoder", tokenizer))
    scheduler = DDPMScheduler.from_config(sd15_config("scheduler"))
    return assemble_pipeline(vae, text_encoder, tokenizer, unet, scheduler)


def save_sd15_random_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the random SD v1.5 pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_sd15_random_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
