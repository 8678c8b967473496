"""The denoising objective of Stable Diffusion fine-tuning (as in diffusers' train_text_to_image)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from adaptkit.component import Conditioning, ModelFamily
    from adaptkit.models import SDComponents
    from adaptkit.recipe import TrainSection
    from adaptkit.training.flow_matching import FlowMatchingConfig


@dataclass(frozen=True)
class ObjectiveConfig:
    """How noise is drawn and the loss weighted.

    ``snr_gamma``: min-SNR-γ loss weighting (None = plain MSE). ``noise_offset``: adds a
    per-channel constant to the noise (helps very dark/bright images). ``input_perturbation``:
    perturbs the noise that is *added* (not the target), as in "Input Perturbation Reduces
    Exposure Bias". ``min_timestep``/``max_timestep``: timesteps are drawn uniformly from
    ``[min_timestep, max_timestep)`` (None = the scheduler's ``num_train_timesteps``), by
    ``timestep_sampling`` (``uniform``, or ``logit_normal`` / ``mode`` through diffusers'
    ``compute_density_for_timestep_sampling``, mapped onto that range). ``debiased_estimation``
    weights each example by 1/√SNR (1/(SNR+1) for v-prediction), as kohya's sd-scripts.
    """

    prediction_type: str = "epsilon"
    snr_gamma: float | None = None
    noise_offset: float = 0.0
    input_perturbation: float = 0.0
    min_timestep: int = 0
    max_timestep: int | None = None
    timestep_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    debiased_estimation: bool = False

    def loss(
        self,
        denoiser,
        scheduler,
        latents: torch.Tensor,
        conditioning: "Conditioning",
        generator,
        predict=None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:func:`diffusion_loss` with this config (``predict``: the family's denoiser call; ``mask``:
        per-latent-pixel loss weights)."""
        return diffusion_loss(denoiser, scheduler, latents, conditioning, generator, self, predict, mask)

    def at_noise_level(self, level: float, num_train_timesteps: int) -> "ObjectiveConfig":
        """This objective at one timestep: ``level`` of the way from clean (0) to pure noise (1)."""
        t = round(level * (num_train_timesteps - 1))
        return replace(self, min_timestep=t, max_timestep=t + 1)


def check_timestep_range(config: ObjectiveConfig, num_train_timesteps: int) -> None:
    """Raise a UserError when the recipe's timestep range does not fit the base model's scheduler."""
    if config.min_timestep >= num_train_timesteps:
        raise UserError(
            f"train.min_timestep = {config.min_timestep}: the base model's scheduler has "
            f"{num_train_timesteps} timesteps (valid: 0..{num_train_timesteps - 1})"
        )
    if config.max_timestep is not None and config.max_timestep > num_train_timesteps:
        raise UserError(
            f"train.max_timestep = {config.max_timestep}: the base model's scheduler has "
            f"{num_train_timesteps} timesteps (valid: {config.min_timestep + 1}..{num_train_timesteps})"
        )


def diffusion_loss(
    unet: torch.nn.Module,
    noise_scheduler,
    latents: torch.Tensor,
    conditioning: "Conditioning",
    generator: torch.Generator,
    config: ObjectiveConfig,
    predict: "Callable[[torch.Tensor, torch.Tensor, Conditioning], torch.Tensor] | None" = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (optionally min-SNR weighted) MSE between the UNet's prediction and its target.

    ``predict(noisy, timesteps, conditioning)`` calls the denoiser (default: a diffusers UNet's call);
    ``mask`` (batch, 1, h, w) weights each latent pixel's error (a masked loss, as kohya's: the
    weighted sum over the batch's elements divided by their count).

    All randomness comes from ``generator`` (a CPU generator), so a step is reproducible from
    its seed alone on any device.
    """
    device = latents.device
    batch = latents.shape[0]

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device, latents.dtype)

    noise = randn(*latents.shape)
    if config.noise_offset:
        noise = noise + config.noise_offset * randn(batch, latents.shape[1], 1, 1)
    added_noise = noise + config.input_perturbation * randn(*latents.shape) if config.input_perturbation else noise
    timesteps = draw_timesteps(noise_scheduler, config, batch, generator).to(device)
    noisy_latents = noise_scheduler.add_noise(latents, added_noise, timesteps)

    if config.prediction_type == "epsilon":
        target = noise
    elif config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:  # validated by the recipe; a plugin scheduler could still carry another value
        raise ValueError(f"unsupported prediction_type {config.prediction_type!r}")

    if predict is not None:
        prediction = predict(noisy_latents, timesteps, conditioning)
    else:
        prediction = conditioning.call_unet(unet, noisy_latents, timesteps)
    if config.snr_gamma is None and not config.debiased_estimation and mask is None:
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    loss = F.mse_loss(prediction.float(), target.float(), reduction="none")
    if mask is not None:
        loss = loss * mask.float()
    if config.snr_gamma is None and not config.debiased_estimation:
        return loss.mean()
    snr = compute_snr(noise_scheduler, timesteps)
    v_prediction = config.prediction_type == "v_prediction"
    weights = torch.ones_like(snr)
    if config.snr_gamma is not None:
        clipped = torch.minimum(snr, torch.full_like(snr, config.snr_gamma))
        weights = weights * (clipped / (snr + 1) if v_prediction else clipped / snr)
    if config.debiased_estimation:  # kohya's apply_debiased_estimation: SNR capped at 1000 (t = 0 is infinite)
        capped = torch.minimum(snr, torch.full_like(snr, 1000.0))
        weights = weights * (1 / (capped + 1) if v_prediction else 1 / torch.sqrt(capped))
    loss = loss.mean(dim=list(range(1, loss.ndim))) * weights
    return loss.mean()


def draw_timesteps(noise_scheduler, config: ObjectiveConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` timesteps in ``[min_timestep, max_timestep)``: uniform integers, or positions drawn by
    ``compute_density_for_timestep_sampling`` (logit-normal, mode) scaled onto the range."""
    high = noise_scheduler.config.num_train_timesteps if config.max_timestep is None else config.max_timestep
    if config.timestep_sampling == "uniform":
        return torch.randint(config.min_timestep, high, (batch,), generator=generator)
    from adaptkit.training.flow_matching import draw_positions

    u = draw_positions(config, batch, generator)
    span = high - config.min_timestep
    return (config.min_timestep + (u * span).long()).clamp(config.min_timestep, high - 1)


#: ``[train]`` keys that only the DDPM objective reads, only the flow-matching one, and both.
DDPM_KEYS = (
    "prediction_type",
    "zero_terminal_snr",
    "snr_gamma",
    "noise_offset",
    "input_perturbation",
    "min_timestep",
    "max_timestep",
    "debiased_estimation",
)
FLOW_KEYS = ("loss_weighting",)
SHARED_KEYS = ("timestep_sampling", "logit_mean", "logit_std", "mode_scale")


def check_objective_keys(train: "TrainSection", family: "ModelFamily") -> None:
    """A ``[train]`` key the family's objective does not read, set away from its default, is a one-line
    UserError naming the family."""
    foreign = FLOW_KEYS if family.objective == "ddpm" else DDPM_KEYS
    own = (DDPM_KEYS if family.objective == "ddpm" else FLOW_KEYS) + SHARED_KEYS
    for key in foreign:
        if getattr(train, key) != type(train).model_fields[key].default:
            kind = "DDPM" if family.objective == "ddpm" else "flow-matching"
            raise UserError(
                f"train.{key} = {getattr(train, key)!r}: model family {family.name} trains with the {kind} "
                f"objective, which does not read it (its keys: {', '.join(own)})"
            )


def objective_for(train: "TrainSection", components: "SDComponents") -> "ObjectiveConfig | FlowMatchingConfig":
    """The recipe's training objective on ``components``, the family's kind (DDPM or flow matching).

    For DDPM, ``train.prediction_type`` and ``train.zero_terminal_snr`` also set every scheduler built
    for sampling (:func:`apply_schedule`)."""
    from adaptkit.models.schedule import apply_schedule
    from adaptkit.training.flow_matching import FlowMatchingConfig

    check_objective_keys(train, components.family)
    if components.family.objective == "flow":
        keys = {key: getattr(train, key) for key in FLOW_KEYS + SHARED_KEYS}
        return FlowMatchingConfig(**keys, shift_mu=components.family.shift_mu)
    apply_schedule(train, components)
    objective = ObjectiveConfig(
        prediction_type=components.noise_scheduler.config.prediction_type,
        snr_gamma=train.snr_gamma,
        noise_offset=train.noise_offset,
        input_perturbation=train.input_perturbation,
        min_timestep=train.min_timestep,
        max_timestep=train.max_timestep,
        debiased_estimation=train.debiased_estimation,
        **{key: getattr(train, key) for key in SHARED_KEYS},
    )
    check_timestep_range(objective, components.noise_scheduler.config.num_train_timesteps)
    return objective
