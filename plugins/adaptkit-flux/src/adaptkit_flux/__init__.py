"""adaptkit-flux: the Flux.1 model family (``flux``) and its tiny test base (``flux-testing:tiny``).

Registered with adaptkit through the ``adaptkit`` entry point in this distribution's
``pyproject.toml``; a Flux base (a ``FluxPipeline`` folder or Hub id) is detected by
``[model] family = "auto"``. Built on adaptkit's public API only.
"""

from __future__ import annotations

from collections.abc import Callable

import adaptkit

from adaptkit_flux.bases import FluxTestingModels
from adaptkit_flux.family import Flux, FluxOptions

__all__ = ["Flux", "FluxOptions", "FluxTestingModels", "register_base_models", "register_model_families"]


@adaptkit.hookimpl
def register_model_families(register: Callable[[type[adaptkit.ModelFamily]], None]) -> None:
    """Register the ``flux`` family."""
    register(Flux)


@adaptkit.hookimpl
def register_base_models(register: Callable[[type[adaptkit.BaseModels]], None]) -> None:
    """Register ``flux-testing:tiny`` (the tiny Flux built in code)."""
    register(FluxTestingModels)
