"""The flow-matching objective: one step's sigmas, target and weights against values worked out by
hand for a fixed seed; the logit-normal draw's mean and spread; DDPM keys refused on a flow family."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from adaptkit.component import Conditioning
from adaptkit.errors import UserError
from adaptkit.training.flow_matching import FlowMatchingConfig, draw, flow_matching_loss

SHIFT = 3.0


def shifted(s: float) -> float:
    """SD3's timestep shift of a σ on the unshifted grid: shift·s / (1 + (shift − 1)·s)."""
    return SHIFT * s / (1 + (SHIFT - 1) * s)


def test_one_step_matches_the_hand_computed_sigmas_target_and_weights() -> None:
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)
    latents = torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 4, 2, 2) / 10
    config = FlowMatchingConfig(timestep_sampling="uniform", loss_weighting="sigma_sqrt")

    # By hand, from the same seed: the noise first, then u ~ U[0, 1) -> table position floor(1000·u).
    generator = torch.Generator().manual_seed(7)
    noise = torch.randn(latents.shape, generator=generator)
    u = torch.rand(2, generator=generator)
    indices = (u * 1000).long()
    # The table's unshifted σ at position i is 1 − i·(1 − 1/1000)/999 (linspace from 1 to 1/1000).
    sigmas = torch.tensor([shifted(1 - i * (1 - 1 / 1000) / 999) for i in indices.tolist()])
    seen = {}

    def predict(noisy, timesteps, conditioning):
        seen.update(noisy=noisy, timesteps=timesteps)
        return torch.zeros_like(noisy)

    loss = flow_matching_loss(
        scheduler, latents, Conditioning(torch.zeros(2, 1, 1)), torch.Generator().manual_seed(7), config, predict
    )
    torch.testing.assert_close(seen["timesteps"], sigmas * 1000, atol=1e-3, rtol=0)
    expected_noisy = (1 - sigmas.view(-1, 1, 1, 1)) * latents + sigmas.view(-1, 1, 1, 1) * noise
    torch.testing.assert_close(seen["noisy"], expected_noisy, atol=1e-6, rtol=0)
    target = noise - latents  # the velocity; a zero prediction errs by all of it
    weights = sigmas**-2.0  # sigma_sqrt
    expected = (weights.view(-1, 1, 1, 1) * target**2).reshape(2, -1).mean(dim=1).mean()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-6)


def test_logit_normal_sigmas_have_the_configured_mean_and_spread() -> None:
    """u = sigmoid(z), z ~ N(mean, std): logit(u) over many draws has that mean and std."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    config = FlowMatchingConfig(timestep_sampling="logit_normal", logit_mean=0.5, logit_std=0.8)
    drawn = draw(scheduler, torch.zeros(20000, 1, 1, 1), torch.Generator().manual_seed(0), config)
    positions = (drawn.indices.float() + 0.5) / 1000  # the drawn u, to the table's resolution
    logits = torch.log(positions / (1 - positions))
    assert logits.mean().item() == pytest.approx(0.5, abs=0.03)
    assert logits.std().item() == pytest.approx(0.8, abs=0.03)
    # shift 1: σ = 1 − position, so high u (mean 0.5 > 0) means low σ on average
    assert drawn.sigmas.mean().item() < 0.5


def test_a_resolution_shift_moves_the_sigmas_and_timesteps_by_hand() -> None:
    """With the family's μ (Flux), σ = exp(μ) / (exp(μ) + 1/s − 1) on the unshifted table (a
    ``use_dynamic_shifting`` scheduler applies no fixed shift) and the timesteps follow as 1000·σ."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
    latents = torch.zeros(3, 16, 8, 8)
    seen = []
    config = FlowMatchingConfig(shift_mu=lambda batch: seen.append(batch.shape) or 0.8)
    drawn = draw(scheduler, latents, torch.Generator().manual_seed(1), config)
    unshifted = torch.tensor([1 - i * (1 - 1 / 1000) / 999 for i in drawn.indices.tolist()])
    expected = torch.tensor([math.exp(0.8) / (math.exp(0.8) + 1 / s - 1) for s in unshifted.tolist()])
    torch.testing.assert_close(drawn.sigmas, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(drawn.timesteps, expected * 1000, atol=1e-3, rtol=0)
    assert seen == [latents.shape]
    plain = draw(scheduler, latents, torch.Generator().manual_seed(1), FlowMatchingConfig())
    assert torch.equal(plain.indices, drawn.indices)
    torch.testing.assert_close(plain.sigmas, unshifted, atol=1e-6, rtol=0)  # no μ: the table as it is


def test_cosmap_weights_are_the_sd3_papers() -> None:
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    sigmas = torch.tensor([0.1, 0.5, 0.9])
    expected = torch.tensor([2 / (math.pi * (1 - 2 * s + 2 * s * s)) for s in (0.1, 0.5, 0.9)])
    torch.testing.assert_close(compute_loss_weighting_for_sd3("cosmap", sigmas=sigmas), expected)


def test_keys_of_the_other_objective_are_one_line_errors() -> None:
    from adaptkit.builtins.families.sd1 import StableDiffusion1
    from adaptkit.recipe import TrainSection
    from adaptkit.training.objective import check_objective_keys

    class FlowFamily(StableDiffusion1):
        name = "flowy"
        objective = "flow"

    check_objective_keys(TrainSection(timestep_sampling="logit_normal"), FlowFamily())
    with pytest.raises(UserError, match=r"train.snr_gamma = 5.0: model family flowy trains with the flow-matching"):
        check_objective_keys(TrainSection(snr_gamma=5.0), FlowFamily())
    with pytest.raises(UserError, match=r"train.loss_weighting = 'cosmap': model family sd1 trains with the DDPM"):
        check_objective_keys(TrainSection(loss_weighting="cosmap"), StableDiffusion1())
    with pytest.raises(UserError, match=r"train.debiased_estimation = True: model family flowy trains with the flow"):
        check_objective_keys(TrainSection(debiased_estimation=True), FlowFamily())
    check_objective_keys(TrainSection(timestep_sampling="logit_normal"), StableDiffusion1())  # both objectives
