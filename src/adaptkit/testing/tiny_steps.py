"""Tiny training and sampling steps on the tiny model, for contract tests and plugins' own tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from adaptkit.models import SDComponents


def load_tiny(model_dir: Path) -> "SDComponents":
    """The tiny model saved at ``model_dir`` (e.g. the ``tiny_model_dir`` fixture), freshly loaded."""
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    return load_base_model(ModelSection(base=str(model_dir)))


def ddim_scheduler(components: "SDComponents") -> Any:
    """A plain DDIM scheduler from the model's scheduler config."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(dict(components.scheduler_config))


def denoiser_inputs(components: "SDComponents", caption: str, batch: int, side: int = 64) -> dict[str, Any]:
    """The UNet's conditioning keywords for ``caption`` (repeated ``batch`` times) as the model's family
    computes it, for ``side``-pixel square images (gradients flow into trainable text encoders)."""
    import torch

    from adaptkit.training.batches import tokenize_all

    ids = tokenize_all(components.tokenizers(), [caption])
    conditioning = components.family.condition(list(components.text_encoders().values()), ids)
    geometry = torch.tensor([[side, side, 0, 0, side, side]])
    conditioning = conditioning.with_added(components.family.image_conditioning(geometry, torch.float32))
    expand = {key: value.expand(batch, *value.shape[1:]) for key, value in (conditioning.added or {}).items()}
    kwargs = {"encoder_hidden_states": conditioning.hidden_states.expand(batch, -1, -1)}
    return {**kwargs, "added_cond_kwargs": expand} if expand else kwargs


#: The prompts of the tiny steps (a method that needs its own words in them, e.g. a textual-inversion
#: token, passes its own).
SAMPLE_PROMPT = "a cartoon cat"
TRAIN_PROMPT = "a photo of a dog"


def unet_output(components: "SDComponents", prompt: str = SAMPLE_PROMPT) -> "torch.Tensor":
    """The UNet's prediction for fixed latents, timestep and prompt (to see whether weights changed)."""
    import torch

    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    with torch.no_grad():
        return components.unet(latents, torch.tensor([500]), **denoiser_inputs(components, prompt, 1)).sample


def train_steps(
    components: "SDComponents", params: list["torch.nn.Parameter"], steps: int, lr: float, prompt: str = TRAIN_PROMPT
) -> None:
    """``steps`` Adam steps of a denoising-style loss that reaches the UNet and the text encoder."""
    import torch

    generator = torch.Generator().manual_seed(2)
    optimizer = torch.optim.Adam(params, lr=lr)
    components.unet.train()
    for _ in range(steps):
        latents = torch.randn(2, 4, 8, 8, generator=generator)
        target = torch.randn(2, 4, 8, 8, generator=generator)
        inputs = denoiser_inputs(components, prompt, 2)
        loss = torch.nn.functional.mse_loss(components.unet(latents, torch.tensor([100, 700]), **inputs).sample, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for module in components.parts().values():
        module.eval()


def sample_images(pipeline: Any, scheduler_steps: int = 2, prompt: str = SAMPLE_PROMPT) -> Any:
    """One fixed-seed image of a fixed prompt, as a numpy array in [0, 1]."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return pipeline(
        prompt, num_inference_steps=scheduler_steps, guidance_scale=2.0, generator=generator, output_type="np"
    ).images
