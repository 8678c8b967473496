"""adaptkit-textual-inversion: the ``textual-inversion`` method (new token embeddings, nothing else trains).

Registered with adaptkit through the ``adaptkit`` entry point in this distribution's
``pyproject.toml``; a recipe selects it with ``[method] name = "textual-inversion"`` and puts the
token in its captions (``[data] caption_prefix``). Built on adaptkit's public API only.
"""

from __future__ import annotations

from collections.abc import Callable

import adaptkit

from adaptkit_textual_inversion.method import TextualInversion, TextualInversionOptions

__all__ = ["TextualInversion", "TextualInversionOptions", "register_methods"]


@adaptkit.hookimpl
def register_methods(register: Callable[[type[adaptkit.Method]], None]) -> None:
    """Register the ``textual-inversion`` method."""
    register(TextualInversion)
