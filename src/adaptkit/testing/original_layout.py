"""Kept import path for the test kit: the SD v1 key map is in :mod:`adaptkit.interop.original_layout`."""

from __future__ import annotations

from adaptkit.interop.original_layout import (
    TEXT_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    pipeline_to_original,
    to_original,
    unet_to_original,
    vae_to_original,
)

__all__ = [
    "TEXT_PREFIX",
    "UNET_PREFIX",
    "VAE_PREFIX",
    "pipeline_to_original",
    "to_original",
    "unet_to_original",
    "vae_to_original",
]
