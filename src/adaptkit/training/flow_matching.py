"""The rectified-flow (flow matching) objective of SD 3.x and Flux, as in diffusers' SD3/Flux training
scripts: ``x_σ = (1 − σ)·latents + σ·noise``, target ``noise − latents``.

σ is drawn through diffusers' ``compute_density_for_timestep_sampling`` (``uniform``,
``logit_normal`` with mean/std, ``mode`` with a scale) as a position in the family scheduler's
``FlowMatchEulerDiscreteScheduler`` table, so the scheduler's ``shift`` applies; the loss is weighted
by ``compute_loss_weighting_for_sd3`` (``none``, ``sigma_sqrt``, ``cosmap``). A family that shifts by
resolution (Flux) gives a μ per batch (:meth:`~adaptkit.component.ModelFamily.shift_mu`) and the σ
are shifted by the scheduler's own ``time_shift``, as its pipeline shifts the sampling σ. All randomness comes from
one CPU generator, so a step is reproducible from its seed alone on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from adaptkit.component import Conditioning

Predict = Callable[[torch.Tensor, torch.Tensor, "Conditioning"], torch.Tensor]


@dataclass(frozen=True)
class FlowMatchingConfig:
    """How σ is drawn (``timestep_sampling`` and its parameters) and the loss weighted."""

    timestep_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    loss_weighting: str = "none"
    #: The family's resolution-dependent shift: μ for a batch of latents, or None (fixed shift).
    shift_mu: "Callable[[torch.Tensor], float | None] | None" = field(default=None, compare=False)
    #: A fixed position on the scheduler's table in [0, 1) instead of drawn ones (the validation loss).
    fixed_position: float | None = None

    def loss(
        self,
        denoiser,
        scheduler,
        latents: torch.Tensor,
        conditioning: "Conditioning",
        generator,
        predict: Predict,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:func:`flow_matching_loss` with this config."""
        return flow_matching_loss(scheduler, latents, conditioning, generator, self, predict, mask)

    def at_noise_level(self, level: float, num_train_timesteps: int) -> "FlowMatchingConfig":
        """This objective at one σ: ``level`` of the way from clean (0) to pure noise (1) along the table
        (whose first entry is the noisiest)."""
        index = round((1.0 - level) * (num_train_timesteps - 1))
        return replace(self, fixed_position=(index + 0.5) / num_train_timesteps)


@dataclass(frozen=True)
class FlowDraw:
    """One batch's draw: the noise, the scheduler-table positions, their timesteps and σ."""

    noise: torch.Tensor
    indices: torch.Tensor
    timesteps: torch.Tensor
    sigmas: torch.Tensor


def draw_positions(config, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` positions in [0, 1) by ``config.timestep_sampling`` (uniform, logit-normal with
    ``logit_mean``/``logit_std``, mode with ``mode_scale``): diffusers' ``compute_density_for_timestep_sampling``,
    for either objective's config."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    return compute_density_for_timestep_sampling(
        config.timestep_sampling,
        batch,
        logit_mean=config.logit_mean,
        logit_std=config.logit_std,
        mode_scale=config.mode_scale,
        generator=generator,
    )


def draw(scheduler, latents: torch.Tensor, generator: torch.Generator, config: FlowMatchingConfig) -> FlowDraw:
    """Noise, then σ positions, from ``generator`` (noise first, as the DDPM objective draws)."""
    batch = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
    if config.fixed_position is not None:
        u = torch.full((batch,), config.fixed_position)
    else:
        u = draw_positions(config, batch, generator)
    steps = scheduler.config.num_train_timesteps
    indices = (u * steps).long().clamp(0, steps - 1)
    timesteps, sigmas = scheduler.timesteps[indices], scheduler.sigmas[indices]
    mu = config.shift_mu(latents) if config.shift_mu is not None else None
    if mu is not None:
        sigmas = scheduler.time_shift(mu, 1.0, sigmas)
        timesteps = sigmas * steps
    return FlowDraw(noise, indices, timesteps, sigmas)


def flow_matching_loss(
    scheduler,
    latents: torch.Tensor,
    conditioning: "Conditioning",
    generator: torch.Generator,
    config: FlowMatchingConfig,
    predict: Predict,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weighted MSE between ``predict(x_σ, timesteps, conditioning)`` and ``noise − latents``
    (``mask``, (batch, 1, h, w): per-latent-pixel weights too)."""
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    device = latents.device
    drawn = draw(scheduler, latents, generator, config)
    noise = drawn.noise.to(device, latents.dtype)
    sigmas = drawn.sigmas.to(device, latents.dtype).view(-1, *([1] * (latents.ndim - 1)))
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    prediction = predict(noisy, drawn.timesteps.to(device), conditioning)
    weights = compute_loss_weighting_for_sd3(config.loss_weighting, sigmas=sigmas)
    error = weights.float() * (prediction.float() - (noise - latents).float()) ** 2
    if mask is not None:
        error = error * mask.float()
    return error.reshape(latents.shape[0], -1).mean(dim=1).mean()
