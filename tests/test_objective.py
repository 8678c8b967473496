"""The denoising objective: targets, min-SNR weights, noise offset, input perturbation, timestep range."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from adaptkit.component import Conditioning
from adaptkit.errors import UserError
from adaptkit.training.objective import ObjectiveConfig, check_timestep_range, diffusion_loss


class Recorder(torch.nn.Module):
    """A stand-in UNet that predicts zeros and remembers its inputs."""

    def forward(self, sample, timesteps, hidden, return_dict=False):
        self.sample, self.timesteps = sample, timesteps
        return (torch.zeros_like(sample),)


def scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    return DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type
    )


def replay(seed: int, latents: torch.Tensor, config: ObjectiveConfig):
    """Draw the same random numbers diffusion_loss draws, in the same order."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=gen)
    offset = torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=gen) if config.noise_offset else None
    perturb = torch.randn(latents.shape, generator=gen) if config.input_perturbation else None
    timesteps = torch.randint(config.min_timestep, config.max_timestep or 1000, (latents.shape[0],), generator=gen)
    return noise, offset, perturb, timesteps


def test_epsilon_loss_is_mse_to_the_noise() -> None:
    latents = torch.randn(3, 4, 8, 8)
    config = ObjectiveConfig()
    loss = diffusion_loss(
        Recorder(), scheduler(), latents, Conditioning(torch.zeros(3, 2, 4)), torch.Generator().manual_seed(1), config
    )
    noise, _, _, _ = replay(1, latents, config)
    assert torch.allclose(loss, noise.pow(2).mean())


def test_v_prediction_target_and_min_snr_weights() -> None:
    latents = torch.randn(4, 4, 8, 8)
    sched = scheduler("v_prediction")
    config = ObjectiveConfig(prediction_type="v_prediction", snr_gamma=5.0)
    unet = Recorder()
    loss = diffusion_loss(
        unet, sched, latents, Conditioning(torch.zeros(4, 2, 4)), torch.Generator().manual_seed(2), config
    )
    noise, _, _, timesteps = replay(2, latents, config)
    target = sched.get_velocity(latents, noise, timesteps)
    snr = compute_snr(sched, timesteps)
    weights = torch.minimum(snr, torch.full_like(snr, 5.0)) / (snr + 1)
    expected = (target.pow(2).mean(dim=(1, 2, 3)) * weights).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert torch.equal(unet.timesteps, timesteps)


def test_debiased_estimation_weights_are_one_over_root_snr_by_hand() -> None:
    """kohya's debiased estimation: each example's MSE times 1/sqrt(SNR(t)) (SNR capped at 1000)."""
    latents = torch.randn(4, 4, 8, 8)
    sched = scheduler()
    config = ObjectiveConfig(debiased_estimation=True)
    loss = diffusion_loss(
        Recorder(), sched, latents, Conditioning(torch.zeros(4, 2, 4)), torch.Generator().manual_seed(5), config
    )
    noise, _, _, timesteps = replay(5, latents, config)
    alphas = sched.alphas_cumprod[timesteps]
    weights = 1 / torch.sqrt(torch.clamp(alphas / (1 - alphas), max=1000.0))  # SNR = ᾱ / (1 − ᾱ)
    expected = (noise.pow(2).mean(dim=(1, 2, 3)) * weights).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)


def test_logit_normal_timesteps_have_the_configured_mean_and_spread_within_the_range() -> None:
    """u = sigmoid(z), z ~ N(mean, std), mapped onto [min_timestep, max_timestep): logit of the
    drawn position has that mean and std, and every timestep stays in the range."""
    from adaptkit.training.objective import draw_timesteps

    config = ObjectiveConfig(timestep_sampling="logit_normal", logit_mean=-0.5, logit_std=0.7, min_timestep=100)
    timesteps = draw_timesteps(scheduler(), config, 20000, torch.Generator().manual_seed(0))
    assert timesteps.min() >= 100 and timesteps.max() <= 999
    positions = (timesteps.double() - 100 + 0.5) / 900
    logits = torch.log(positions / (1 - positions))
    assert logits.mean().item() == pytest.approx(-0.5, abs=0.03)
    assert logits.std().item() == pytest.approx(0.7, abs=0.03)
    uniform = draw_timesteps(scheduler(), ObjectiveConfig(), 4, torch.Generator().manual_seed(3))
    assert torch.equal(uniform, torch.randint(0, 1000, (4,), generator=torch.Generator().manual_seed(3)))


def test_noise_offset_and_input_perturbation_change_what_they_should() -> None:
    latents = torch.randn(2, 4, 8, 8)
    sched = scheduler()
    config = ObjectiveConfig(noise_offset=0.1, input_perturbation=0.2)
    unet = Recorder()
    loss = diffusion_loss(
        unet, sched, latents, Conditioning(torch.zeros(2, 2, 4)), torch.Generator().manual_seed(3), config
    )
    noise, offset, perturb, timesteps = replay(3, latents, config)
    target = noise + 0.1 * offset
    assert torch.allclose(loss, target.pow(2).mean())  # the target carries the offset, not the perturbation
    noisy = sched.add_noise(latents, target + 0.2 * perturb, timesteps)
    assert torch.allclose(unet.sample, noisy)  # the input carries both


def test_timestep_range_bounds_the_drawn_timesteps() -> None:
    latents = torch.randn(64, 4, 2, 2)
    config = ObjectiveConfig(min_timestep=200, max_timestep=300)
    unet = Recorder()
    diffusion_loss(
        unet, scheduler(), latents, Conditioning(torch.zeros(64, 2, 4)), torch.Generator().manual_seed(4), config
    )
    assert int(unet.timesteps.min()) >= 200 and int(unet.timesteps.max()) < 300
    assert len(set(unet.timesteps.tolist())) > 30  # spread over the range, not one value
    assert torch.equal(unet.timesteps, replay(4, latents, config)[3])


def test_timestep_range_must_fit_the_scheduler() -> None:
    with pytest.raises(UserError, match=r"train.max_timestep = 1200: .* 1000 timesteps \(valid: 1..1000\)"):
        check_timestep_range(ObjectiveConfig(max_timestep=1200), 1000)
    with pytest.raises(UserError, match=r"train.min_timestep = 1000: .*valid: 0..999"):
        check_timestep_range(ObjectiveConfig(min_timestep=1000), 1000)
    with pytest.raises(UserError, match=r"train.min_timestep = 1200: .*valid: 0..999"):  # the first key that is off
        check_timestep_range(ObjectiveConfig(min_timestep=1200, max_timestep=1500), 1000)
    check_timestep_range(ObjectiveConfig(min_timestep=10, max_timestep=1000), 1000)  # fits: no error


@pytest.fixture(scope="module")
def sd2_dir(tmp_path_factory: pytest.TempPathFactory):
    from adaptkit.testing.tiny_sd2 import save_tiny_sd2_pipeline

    return save_tiny_sd2_pipeline(tmp_path_factory.mktemp("sd2") / "tiny-sd2")


def test_zero_terminal_snr_rescales_training_and_sampling_schedules(sd2_dir) -> None:
    from adaptkit.builtins.samplers.ddim import DDIMSampler
    from adaptkit.models import load_base_model
    from adaptkit.models.schedule import apply_schedule
    from adaptkit.recipe import ModelSection, TrainSection
    from adaptkit.sampling.pipeline import sampling_pipeline
    from adaptkit.testing.contracts import build

    components = load_base_model(ModelSection(base=str(sd2_dir)))
    before = components.noise_scheduler.alphas_cumprod.clone()
    apply_schedule(TrainSection(zero_terminal_snr=True), components)
    after = components.noise_scheduler.alphas_cumprod
    assert before[-1] > 1e-3 and after[-1] < 1e-6  # SNR(T) = a/(1-a): from ~0.005 to ~0
    assert components.noise_scheduler.config.prediction_type == "v_prediction"
    sampler = build(DDIMSampler, {}, "sample.sampler")
    scheduler = sampling_pipeline(components, sampler).scheduler
    assert scheduler.config.rescale_betas_zero_snr and scheduler.config.timestep_spacing == "trailing"
    torch.testing.assert_close(scheduler.alphas_cumprod, after)


def test_zero_terminal_snr_with_an_epsilon_target_is_one_line(tiny_model_dir) -> None:
    from adaptkit.models import load_base_model
    from adaptkit.models.schedule import apply_schedule
    from adaptkit.recipe import ModelSection, TrainSection

    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    with pytest.raises(UserError, match=r"zero_terminal_snr = true needs v-prediction, and this run predicts 'eps"):
        apply_schedule(TrainSection(zero_terminal_snr=True), components)
    apply_schedule(TrainSection(zero_terminal_snr=True, prediction_type="v_prediction"), components)
    assert components.noise_scheduler.config.rescale_betas_zero_snr


def test_the_recipe_sets_the_ddpm_timestep_tools(tiny_model_dir) -> None:
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection, TrainSection
    from adaptkit.training.objective import objective_for

    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    train = TrainSection(timestep_sampling="mode", mode_scale=0.8, debiased_estimation=True, min_timestep=10)
    objective = objective_for(train, components)
    assert (objective.timestep_sampling, objective.mode_scale, objective.debiased_estimation) == ("mode", 0.8, True)
    assert objective.min_timestep == 10
