"""Attention backends: PyTorch SDPA (default) or xformers (CUDA only)."""

from __future__ import annotations

import importlib.util

import torch

from adaptkit.errors import UserError


def configure_attention(unet: torch.nn.Module, backend: str) -> None:
    """Set the denoiser's attention processors; a clear error when xformers cannot run here.

    ``sdpa``: the classic ``Attention`` processors become ``AttnProcessor2_0`` (PyTorch SDPA); others
    (e.g. SD 3's joint attention, whose diffusers default already calls SDPA) stay as loaded.
    """
    if backend == "sdpa":
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        processors = dict(unet.attn_processors)
        sdpa = AttnProcessor2_0()
        for name, processor in processors.items():
            if type(processor) in (AttnProcessor, AttnProcessor2_0):
                processors[name] = sdpa
        unet.set_attn_processor(processors)
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
