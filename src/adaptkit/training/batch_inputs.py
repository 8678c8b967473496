"""A micro-batch's denoiser inputs: its latents (from the latent cache or the VAE) and its conditioning
(from the text cache or the text encoders, chunked for long captions, plus the family's per-image
inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from adaptkit.training.cache import latent_scaling, scale_latents
from adaptkit.training.long_captions import condition_chunked

if TYPE_CHECKING:
    from adaptkit.component import Conditioning
    from adaptkit.models import SDComponents
    from adaptkit.training.batches import Batch
    from adaptkit.training.cache import LatentCache
    from adaptkit.training.text_cache import TextCache


@dataclass
class BatchInputs:
    """Encodes batches for one run (``text_encoders``: the possibly accelerator-wrapped ones)."""

    components: "SDComponents"
    text_encoders: Sequence[torch.nn.Module]
    latent_cache: "LatentCache | None"
    text_cache: "TextCache | None"
    device: torch.device
    trains_text_encoder: bool
    chunks: int = 1

    def latents(self, batch: "Batch", generator: torch.Generator) -> torch.Tensor:
        """The batch's scaled latents, drawn from the posterior with ``generator``."""
        if self.latent_cache is not None:
            return self.latent_cache.sample(batch.indices, batch.flipped, generator, self.device)
        vae = self.components.vae
        assert batch.pixel_values is not None, "no latent cache, so the batch carries pixels"
        with torch.no_grad():
            pixels = batch.pixel_values.to(self.device, dtype=vae.dtype, non_blocking=True)
            latents = vae.encode(pixels).latent_dist.sample(generator=generator)
        return scale_latents(latents, latent_scaling(vae))

    def conditioning(self, batch: "Batch") -> "Conditioning":
        """The family's conditioning of the batch: its captions' (cached or encoded) and its images'."""
        family = self.components.family
        if self.text_cache is not None:
            conditioning = self.text_cache.lookup(batch.captions, self.device)
        else:
            ids = [i.to(self.device, non_blocking=True) for i in batch.input_ids]
            with torch.enable_grad() if self.trains_text_encoder else torch.no_grad():
                conditioning = condition_chunked(family, self.text_encoders, ids, self.chunks)
        geometry = batch.geometry.to(self.device, non_blocking=True)
        return conditioning.with_added(family.image_conditioning(geometry, conditioning.hidden_states.dtype))
