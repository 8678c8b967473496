"""The noise schedule a run trains and samples with: the base's, changed by the recipe's ``[train]``
``prediction_type`` and ``zero_terminal_snr`` (the same change for training and every sampler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.models.components import SDComponents
    from adaptkit.recipe import TrainSection


def apply_schedule(train: "TrainSection", components: "SDComponents") -> None:
    """Set ``train.prediction_type`` and ``train.zero_terminal_snr`` on the training scheduler and on
    ``scheduler_config`` (which samplers build from). Zero terminal SNR with an epsilon target is a
    one-line UserError: at SNR 0 the noise is the whole input, so there is nothing to predict."""
    from diffusers import DDPMScheduler

    settings: dict[str, object] = {}
    if train.prediction_type:
        settings["prediction_type"] = train.prediction_type
    if train.zero_terminal_snr:
        predicted = train.prediction_type or components.noise_scheduler.config.prediction_type
        if predicted != "v_prediction":
            raise UserError(
                f"train.zero_terminal_snr = true needs v-prediction, and this run predicts {predicted!r}: "
                "set train.prediction_type = 'v_prediction'"
            )
        settings.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    if not settings:
        return
    components.scheduler_config.update(settings)
    components.noise_scheduler = DDPMScheduler.from_config({**components.noise_scheduler.config, **settings})
