"""adaptkit-wikiart: the ``wikiart`` dataset adapter (``huggan/wikiart`` and copies in its schema).

Registered with adaptkit through the ``adaptkit`` entry point in this distribution's
``pyproject.toml``; a recipe selects it with ``[data] adapter = "wikiart"``.
"""

from __future__ import annotations

from collections.abc import Callable

import adaptkit

from adaptkit_wikiart.adapter import WikiArtAdapter, WikiArtOptions

__all__ = ["WikiArtAdapter", "WikiArtOptions", "register_datasets"]


@adaptkit.hookimpl
def register_datasets(register: Callable[[type[adaptkit.DatasetAdapter]], None]) -> None:
    """Register the ``wikiart`` adapter."""
    register(WikiArtAdapter)
