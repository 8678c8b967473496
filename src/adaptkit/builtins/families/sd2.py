"""``sd2``: Stable Diffusion v2.x — the v1 pipeline with an OpenCLIP-H text encoder.

Same ``StableDiffusionPipeline`` and conditioning as ``sd1`` (diffusers' converted OpenCLIP text
encoder already ends at the penultimate layer SD 2 conditions on). The prediction type comes
from the base's scheduler config: ``v_prediction`` for the 768 px models, ``epsilon`` for 512 px.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adaptkit.builtins.families.sd1 import StableDiffusion1, _open_clip


class StableDiffusion2(StableDiffusion1):
    """Stable Diffusion v2.x: ``StableDiffusionPipeline`` with OpenCLIP's text encoder."""

    name = "sd2"
    description = (
        "Stable Diffusion v2.x (OpenCLIP-H text encoder, UNet; v-prediction or epsilon from the scheduler); "
        "StableDiffusionPipeline."
    )
    fallback = False
    model_spec = ("sd_v2", "stable-diffusion-v2-512")
    native_resolution = 768
    bench_models = None
    single_file_text_encoders = {"text_encoder": ("openclip", "cond_stage_model.model.")}

    def recognises(self, model_index: dict[str, Any], component_config: Callable[[str], dict[str, Any]]) -> bool:
        """A ``StableDiffusionPipeline`` folder whose text encoder is OpenCLIP's (``gelu``)."""
        return model_index.get("_class_name") in self.pipeline_class_names and _open_clip(component_config)

    def recognises_keys(self, keys: Iterable[str]) -> bool:
        """The original SD layout with an OpenCLIP ``cond_stage_model.model`` text encoder."""
        names = list(keys)
        return any(k.startswith("model.diffusion_model.") for k in names) and any(
            k.startswith("cond_stage_model.model.") for k in names
        )
