"""adaptkit-lokr: LoKr (Kronecker product) and OFT (orthogonal fine-tuning) adapters, through peft.

Registered with adaptkit through the ``adaptkit`` entry point in this distribution's
``pyproject.toml``; a recipe selects them with ``[method] name = "lokr"`` or ``"oft"``.
"""

from __future__ import annotations

from collections.abc import Callable

import adaptkit

from adaptkit_lokr.lokr import LokrMethod, LokrOptions
from adaptkit_lokr.oft import OftMethod, OftOptions

__all__ = ["LokrMethod", "LokrOptions", "OftMethod", "OftOptions", "register_methods"]


@adaptkit.hookimpl
def register_methods(register: Callable[[type[adaptkit.Method]], None]) -> None:
    """Register the LoKr and OFT methods."""
    register(LokrMethod)
    register(OftMethod)
