"""Identities of models, for cache keys: a full hash of a model's weights (the VAE) or a cheap
fingerprint of them (text encoders, whose weights can be gigabytes)."""

from __future__ import annotations

import hashlib
import json

import torch


def config_json(module: torch.nn.Module) -> bytes:
    """A model's config as canonical JSON, without where it was loaded from (``_name_or_path``: the same
    weights in another folder or clone compute the same)."""
    config = getattr(module, "config", {})
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    config.pop("_name_or_path", None)
    return json.dumps(config, sort_keys=True, default=str).encode()


def module_identity(module: torch.nn.Module) -> str:
    """A hash of a model's config and weights (two VAEs with equal hashes encode alike)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(config_json(module))
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_fingerprint(module: torch.nn.Module, samples: int = 64) -> str:
    """A cheap hash of a model's config and weights: every tensor's name, shape and dtype, and ``samples``
    evenly spaced values of each (a text encoder's full weights can be gigabytes; a fine-tune changes
    them all, so the samples tell two apart)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(config_json(module))
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // samples)].cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(sample.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
