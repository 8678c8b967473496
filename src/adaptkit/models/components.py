"""The components a run trains and samples with, and the model family that assembles them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from adaptkit.component import ModelFamily


@dataclass
class SDComponents:
    """The parts of a base model's pipeline, loaded once per run.

    ``noise_scheduler`` is the training (DDPM) scheduler; ``scheduler_config`` is the base
    model's scheduler config, from which samplers build their schedulers. ``family`` is the
    :class:`~adaptkit.ModelFamily` that loaded them and assembles sampling pipelines. ``source``
    is the recipe's ``model.base``; ``extra`` holds loader details (``kind``, ``location``).
    """

    unet: "UNet2DConditionModel"
    vae: "AutoencoderKL"
    text_encoder: "CLIPTextModel"
    tokenizer: "CLIPTokenizer"
    noise_scheduler: "SchedulerMixin"
    scheduler_config: dict[str, Any]
    source: str
    family: "ModelFamily"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pipeline(
        cls, pipeline: "DiffusionPipeline", source: str, family: "ModelFamily", **extra: Any
    ) -> "SDComponents":
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
            family=family,
            extra=dict(extra),
        )

    def pipeline(self, scheduler: "SchedulerMixin") -> "DiffusionPipeline":
        """The family's sampling pipeline sharing these modules (no copies), with ``scheduler``."""
        return self.family.assemble(self, scheduler)
