"""Fast paths that change speed, not results: TF32 and channels_last on CUDA, optional torch.compile.

SDPA attention is set by :mod:`adaptkit.training.attention`; fused AdamW by
:mod:`adaptkit.training.optim`. channels_last is applied on CUDA only: there convolutions in
NHWC run on tensor cores, on the CPU it brings nothing for these models.
"""

from __future__ import annotations

import torch


def enable_tf32() -> None:
    """Allow TF32 matmuls and convolutions on CUDA (Ampere and newer); nothing elsewhere."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def use_channels_last(components, device: torch.device) -> bool:
    """Put the UNet and the VAE in channels_last memory format on CUDA; returns whether it did."""
    if torch.device(device).type != "cuda":
        return False
    components.unet.to(memory_format=torch.channels_last)
    components.vae.to(memory_format=torch.channels_last)
    return True


def maybe_compile(unet: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(unet)`` when ``enabled`` (the weights stay shared with ``unet``), else ``unet`` itself."""
    return torch.compile(unet) if enabled else unet
