"""Attention backends: PyTorch SDPA (default) or xformers (CUDA only)."""

from __future__ import annotations

import importlib.util

import torch

from adaptkit.errors import UserError


def configure_attention(unet: torch.nn.Module, backend: str) -> None:
    """Set the UNet's attention processors; a clear error when xformers cannot run here."""
    if backend == "sdpa":
        from diffusers.models.attention_processor import AttnProcessor2_0

        unet.set_attn_processor(AttnProcessor2_0())
        return
    if backend == "xformers":
        if importlib.util.find_spec("xformers") is None:
            raise UserError(
                "train.attention = 'xformers': xformers is not installed "
                "(pip install 'adaptkit[xformers]'), or use attention = 'sdpa'"
            )
        if not torch.cuda.is_available():
            raise UserError(
                "train.attention = 'xformers' needs a CUDA device and none is available; use attention = 'sdpa'"
            )
        unet.enable_xformers_memory_efficient_attention()
        return
    raise UserError(f"train.attention: unknown backend {backend!r} (valid: sdpa, xformers)")
