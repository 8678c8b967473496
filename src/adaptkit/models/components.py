"""The components a run trains and samples with, and the model family that assembles them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from adaptkit.component import ModelFamily


@dataclass
class SDComponents:
    """The parts of a base model's pipeline, loaded once per run.

    ``text_encoder_2``/``tokenizer_2`` (and ``_3``) are the second (third) text encoder of a family
    that has one (None otherwise); :meth:`text_encoders` and :meth:`tokenizers` list what there is, in order, so no
    caller counts encoders. ``denoiser`` is the pipeline's ``unet`` or ``transformer``
    (``denoiser_name`` says which). ``noise_scheduler`` is the training scheduler (the family's:
    DDPM, or flow matching); ``scheduler_config`` is the base
    model's scheduler config, from which samplers build their schedulers. ``family`` is the
    :class:`~adaptkit.ModelFamily` that loaded them and assembles sampling pipelines. ``source``
    is the recipe's ``model.base``; ``extra`` holds loader details (``kind``, ``location``) and the
    pipeline's own options (``pipeline_config``).
    """

    denoiser: "UNet2DConditionModel | torch.nn.Module"
    vae: "AutoencoderKL"
    text_encoder: "CLIPTextModel"
    tokenizer: "CLIPTokenizer"
    noise_scheduler: "SchedulerMixin"
    scheduler_config: dict[str, Any]
    source: str
    family: "ModelFamily"
    extra: dict[str, Any] = field(default_factory=dict)
    text_encoder_2: "CLIPTextModel | None" = None
    tokenizer_2: "CLIPTokenizer | None" = None
    text_encoder_3: "torch.nn.Module | None" = None
    tokenizer_3: Any = None
    denoiser_name: str = "unet"

    @property
    def unet(self) -> "UNet2DConditionModel | torch.nn.Module":
        """The denoiser (the name most of diffusers' SD code uses; a transformer in SD 3.x)."""
        return self.denoiser

    def text_encoders(self) -> dict[str, "torch.nn.Module"]:
        """The text encoders by component name (``text_encoder``, ``text_encoder_2``, ``text_encoder_3``), in order."""
        encoders = {
            "text_encoder": self.text_encoder,
            "text_encoder_2": self.text_encoder_2,
            "text_encoder_3": self.text_encoder_3,
        }
        return {name: module for name, module in encoders.items() if module is not None}

    def tokenizers(self) -> tuple["CLIPTokenizer", ...]:
        """One tokenizer per text encoder, in the order of :meth:`text_encoders`."""
        return tuple(t for t in (self.tokenizer, self.tokenizer_2, self.tokenizer_3) if t is not None)

    def parts(self) -> dict[str, "torch.nn.Module"]:
        """The modules a method can train, by component name: the denoiser, then the text encoders.

        The names prefix trainable weights in checkpoints and name the parts of a LoRA file
        (diffusers' ``<part>_lora_layers``)."""
        return {self.denoiser_name: self.denoiser, **self.text_encoders()}

    @classmethod
    def from_pipeline(
        cls, pipeline: "DiffusionPipeline", source: str, family: "ModelFamily", **extra: Any
    ) -> "SDComponents":
        """The components of a loaded pipeline (shared, not copied); the training scheduler is DDPM
        built by the family from the pipeline's scheduler config (DDPM, as in diffusers' training
        examples, for the DDPM families)."""
        scheduler_config = dict(pipeline.scheduler.config)
        settings = {  # the pipeline's own options (not its components), e.g. force_zeros_for_empty_prompt
            key: value
            for key, value in pipeline.config.items()
            if not key.startswith("_") and not isinstance(value, (list, tuple))
        }
        name = "unet" if getattr(pipeline, "unet", None) is not None else "transformer"
        components = cls(
            denoiser=getattr(pipeline, name),
            vae=pipeline.vae,
            text_encoder=pipeline.text_encoder,
            tokenizer=pipeline.tokenizer,
            noise_scheduler=family.training_scheduler(scheduler_config),
            scheduler_config=scheduler_config,
            source=source,
            family=family,
            extra={"pipeline_config": settings, **extra},
            text_encoder_2=getattr(pipeline, "text_encoder_2", None),
            tokenizer_2=getattr(pipeline, "tokenizer_2", None),
            text_encoder_3=getattr(pipeline, "text_encoder_3", None),
            tokenizer_3=getattr(pipeline, "tokenizer_3", None),
            denoiser_name=name,
        )
        family.bind(components)
        return components

    def pipeline(self, scheduler: "SchedulerMixin") -> "DiffusionPipeline":
        """The family's sampling pipeline sharing these modules (no copies), with ``scheduler``."""
        return self.family.assemble(self, scheduler)
