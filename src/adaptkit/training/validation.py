"""The validation loss: the training objective on held-out images at fixed noise levels with fixed noise.

The held-out images are the dataset's ``eval`` split (never trained on), centre-cropped at the
training resolution and encoded once: the VAE posterior's mean (no sampling) and the captions'
conditioning. Each (example, noise level) pair draws its noise from its own seed, so the value at a
given set of weights is the same every time it is computed, and comparable across steps and runs.
It is computed on the main process with the weights a result would hold (EMA's, schedule-free's
average) and the denoiser in eval mode.

:class:`EarlyStop` counts validations without improvement (``early_stop_patience``); its state is
part of each checkpoint, so a resumed run stops where a straight one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.training.batches import derive_seed, tokenize_all
from adaptkit.training.cache import latent_scaling, scale_latents
from adaptkit.training.long_captions import caption_chunks, condition_chunked

if TYPE_CHECKING:
    from collections.abc import Callable

    from adaptkit.component import Conditioning, StyleDataset
    from adaptkit.models import SDComponents
    from adaptkit.recipe import DataSection, ValidationSection


@dataclass
class HeldOut:
    """One held-out example, encoded: its latents (1, C, h, w) and conditioning."""

    latents: torch.Tensor
    conditioning: "Conditioning"


def encode_held_out(
    examples: "StyleDataset", components: "SDComponents", data: "DataSection", device: torch.device, limit: int
) -> list[HeldOut]:
    """The first ``limit`` examples of ``examples``, centre-cropped, unflipped, with their first caption."""
    from adaptkit.data.pipeline import ImagePipeline

    pipeline = ImagePipeline.from_data_section(data, center_crop=True, random_flip=False)
    family, vae = components.family, components.vae
    encoders = list(components.text_encoders().values())
    scaling = latent_scaling(vae)
    held_out = []
    with torch.no_grad():
        for index in range(min(limit, len(examples))):
            example = examples[index]
            out = pipeline(example.image, flip=False)
            pixels = out.pixel_values.unsqueeze(0).to(device, dtype=vae.dtype)
            latents = scale_latents(vae.encode(pixels).latent_dist.mode(), scaling)
            caption = example.captions[0] if example.captions else ""
            chunks = caption_chunks(data)
            ids = [ids.to(device) for ids in tokenize_all(components.tokenizers(), [caption], chunks)]
            conditioning = condition_chunked(family, encoders, ids, chunks)
            geometry = torch.tensor([out.geometry], dtype=torch.float32, device=device)
            extra = family.image_conditioning(geometry, conditioning.hidden_states.dtype)
            held_out.append(HeldOut(latents, conditioning.with_added(extra)))
    return held_out


def validation_loss(
    held_out: list[HeldOut], objective: Any, components: "SDComponents", section: "ValidationSection"
) -> float:
    """The mean objective over every held-out example and noise level, each with its own fixed noise."""
    family, denoiser = components.family, components.denoiser
    scheduler = components.noise_scheduler
    steps = scheduler.config.num_train_timesteps

    def predict(noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: "Conditioning") -> torch.Tensor:
        return family.predict(denoiser, noisy, timesteps, conditioning)

    total, count = 0.0, 0
    was_training = denoiser.training
    denoiser.eval()
    try:
        with torch.no_grad():
            for i, example in enumerate(held_out):
                for j, level in enumerate(section.noise_levels):
                    generator = torch.Generator().manual_seed(derive_seed(section.seed, "validation", i, j))
                    fixed = objective.at_noise_level(level, steps)
                    loss = fixed.loss(denoiser, scheduler, example.latents, example.conditioning, generator, predict)
                    total, count = total + float(loss), count + 1
    finally:
        denoiser.train(was_training)
    return total / max(count, 1)


@dataclass
class EarlyStop:
    """Validations since the best one; ``patience`` of them in a row without improvement stops the run."""

    patience: int
    best: float = float("inf")
    since_best: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    def record(self, step: int, value: float) -> bool:
        """Note ``value`` at ``step``; whether training should stop now."""
        self.history.append((step, value))
        if value < self.best:
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1
        return bool(self.patience) and self.since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "since_best": self.since_best, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:
            self.best, self.since_best = float(state["best"]), int(state["since_best"])
            self.history = [(int(s), float(v)) for s, v in state["history"]]


class Validation:
    """A run's validation: its held-out examples (encoded once, on the main process), when it is due,
    and the early stop."""

    def __init__(self, section: "ValidationSection", examples: "StyleDataset | None") -> None:
        self.section = section
        self.examples = examples
        self.held_out: list[HeldOut] = []
        self.early_stop = EarlyStop(section.early_stop_patience)

    @property
    def enabled(self) -> bool:
        return bool(self.section.every)

    def due(self, step: int, last_step: int) -> bool:
        """Whether to validate after ``step``: every ``every`` steps and at the last."""
        return self.enabled and (step % self.section.every == 0 or step == last_step)

    def prepare(self, components: "SDComponents", data: "DataSection", device: torch.device) -> None:
        """Encode the held-out examples."""
        assert self.examples is not None
        self.held_out = encode_held_out(self.examples, components, data, device, self.section.examples)

    def measure(self, objective: Any, components: "SDComponents") -> float:
        """The validation loss of ``components``' current weights."""
        return validation_loss(self.held_out, objective, components, self.section)

    def record(
        self, step: int, objective: Any, components: "SDComponents", run: Any, say: "Callable[[str], None]"
    ) -> bool:
        """Measure at ``step``, log it (``metrics.jsonl`` as ``val_loss``, the trackers, one line to ``say``);
        whether the early stop says to stop."""
        from adaptkit.training import trackers

        value = self.measure(objective, components)
        stop = self.early_stop.record(step, value)
        run.log_metrics({"step": step, "val_loss": value})
        trackers.log(run.accelerator, {"val_loss": value}, step)
        why = f"; {self.section.early_stop_patience} without improvement: stopping" if stop else ""
        say(f"validation loss {value:.4f} at step {step}{why}")
        return stop
