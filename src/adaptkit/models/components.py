"""The Stable Diffusion components a run trains and samples with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, SchedulerMixin, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion v1.x pipeline, loaded once per run.

    ``noise_scheduler`` is the training (DDPM) scheduler; ``scheduler_config`` is the base
    model's scheduler config, from which samplers build their schedulers. ``source`` is the
    recipe's ``model.base``; ``extra`` holds loader details (``kind``, ``location``).
    """

    unet: "UNet2DConditionModel"
    vae: "AutoencoderKL"
    text_encoder: "CLIPTextModel"
    tokenizer: "CLIPTokenizer"
    noise_scheduler: "SchedulerMixin"
    scheduler_config: dict[str, Any]
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, pipeline: "StableDiffusionPipeline", source: str, **extra: Any) -> "SDComponents":
        """The components of a loaded pipeline (shared, not copied); the training scheduler is DDPM
        built from the pipeline's scheduler config, as in diffusers' training examples."""
        from diffusers import DDPMScheduler

        scheduler_config = dict(pipeline.scheduler.config)
        return cls(
            unet=pipeline.unet,
            vae=pipeline.vae,
            text_encoder=pipeline.text_encoder,
            tokenizer=pipeline.tokenizer,
            noise_scheduler=DDPMScheduler.from_config(scheduler_config),
            scheduler_config=scheduler_config,
            source=source,
            extra=dict(extra),
        )

    def pipeline(self, scheduler: "SchedulerMixin") -> "StableDiffusionPipeline":
        """A pipeline sharing these modules (no copies), with ``scheduler`` and no safety checker."""
        return assemble_pipeline(self.vae, self.text_encoder, self.tokenizer, self.unet, scheduler)


def assemble_pipeline(
    vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any
) -> "StableDiffusionPipeline":
    """A ``StableDiffusionPipeline`` of these modules: no safety checker, no progress bar."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
