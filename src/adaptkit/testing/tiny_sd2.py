"""A tiny SD 2.x pipeline built in code: the tiny SD1 layout with an OpenCLIP-style text encoder
(``gelu``), linear attention projections and a v-prediction scheduler, as SD 2.1 at 768 px has.

For tests of the ``sd2`` family: it loads with ``StableDiffusionPipeline.from_pretrained`` offline
and samples at 64 px. Random weights from ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import build_tiny_sd_layout

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline


def build_tiny_sd2_pipeline(seed: int = 0) -> "StableDiffusionPipeline":
    """The tiny SD 2.x pipeline with random weights drawn from ``seed`` (DDPM, v-prediction)."""
    from adaptkit.builtins.families.sd1 import OPEN_CLIP_ACTIVATION

    unet = {"attention_head_dim": (2, 4, 4, 4), "use_linear_projection": True}
    return build_tiny_sd_layout(seed, unet, OPEN_CLIP_ACTIVATION, "v_prediction")


def save_tiny_sd2_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny SD 2.x pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_sd2_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
