"""Full fine-tuning: every UNet weight trains (and the text encoders', optionally).

The result is a whole diffusers pipeline folder (safetensors), loadable with the family's
pipeline class (``from_pretrained``); :meth:`FullMethod.apply` swaps its UNet (and text
encoders) into an existing pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from adaptkit.component import Method, Options
from adaptkit.errors import UserError

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline, SchedulerMixin

    from adaptkit.models import SDComponents


class FullOptions(Options):
    """Full fine-tuning options."""

    train_text_encoder: bool = Field(False, description="Also train every text-encoder weight.")


class FullMethod(Method):
    """Trains all UNet weights (and every text encoder's when ``train_text_encoder``)."""

    name = "full"
    description = "Full fine-tune of the UNet (optionally the text encoder); saves a whole diffusers pipeline."
    Options: ClassVar[type[FullOptions]] = FullOptions
    options: FullOptions
    trains_base_weights = True

    def __init__(self, options: FullOptions | None = None) -> None:
        super().__init__(options)
        self.trains_text_encoder = self.options.train_text_encoder

    def _trained(self, components: "SDComponents") -> list["torch.nn.Module"]:
        return list(components.parts().values()) if self.trains_text_encoder else [components.unet]

    def prepare(self, components: "SDComponents") -> list["torch.nn.Parameter"]:
        """Freeze the VAE (and the text encoder unless trained); trained modules go to float32."""
        import torch

        for module in (components.vae, *components.parts().values()):
            module.requires_grad_(False)
        params: list[torch.nn.Parameter] = []
        for module in self._trained(components):
            module.to(torch.float32).requires_grad_(True)
            params.extend(module.parameters())
        return params

    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """Write the whole pipeline (base model's scheduler, no safety checker) as safetensors."""
        pipeline = components.pipeline(_base_scheduler(components.scheduler_config))
        pipeline.save_pretrained(str(out_dir), safe_serialization=True)

    def apply(self, pipeline: "DiffusionPipeline", saved_dir: Path) -> "DiffusionPipeline":
        """Swap the saved UNet (and text encoders, when trained) into ``pipeline``, same dtype and device."""
        saved_dir = Path(saved_dir)
        names = ["unet", *(("text_encoder", "text_encoder_2") if self.trains_text_encoder else ())]
        present = {name: getattr(pipeline, name) for name in names if getattr(pipeline, name, None) is not None}
        swaps = {name: _load_part(type(module), saved_dir, name, module) for name, module in present.items()}
        pipeline.register_modules(**swaps)
        return pipeline


def _load_part(cls: Any, saved_dir: Path, name: str, like: "torch.nn.Module") -> "torch.nn.Module":
    """``cls.from_pretrained(saved_dir/name)`` from safetensors only, in ``like``'s dtype and device."""
    folder = saved_dir / name
    if not folder.is_dir():
        raise UserError(f"{saved_dir}: no {name}/ folder (not a full fine-tune result)")
    if not any(folder.glob("*.safetensors")):
        raise UserError(f"{folder}: no .safetensors weights (pickle weights are refused)")
    try:
        module = cls.from_pretrained(str(folder), use_safetensors=True, dtype=like.dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{folder}: cannot load the fine-tuned {name} ({str(exc).splitlines()[0]})") from exc
    return module.to(like.device).eval()


def _base_scheduler(config: dict[str, Any]) -> "SchedulerMixin":
    """The base model's own scheduler class (from ``_class_name``), else DDPM, built from ``config``."""
    import diffusers

    cls = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        cls = diffusers.DDPMScheduler
    return cls.from_config(config)
