"""Built-in model families, registered through ``register_model_families`` like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.builtins.families.sd1 import StableDiffusion1
from adaptkit.builtins.families.sd2 import StableDiffusion2
from adaptkit.builtins.families.sd3 import StableDiffusion3
from adaptkit.builtins.families.sdxl import StableDiffusionXL
from adaptkit.component import ModelFamily
from adaptkit.hookspecs import hookimpl


@hookimpl
def register_model_families(register: Callable[[type[ModelFamily]], None]) -> None:
    """Register ``sd1``, ``sd2``, ``sdxl`` and ``sd3``."""
    register(StableDiffusion1)
    register(StableDiffusion2)
    register(StableDiffusionXL)
    register(StableDiffusion3)
