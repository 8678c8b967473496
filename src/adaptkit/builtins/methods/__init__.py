"""Built-in adaptation methods (registered through ``register_methods``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.hookspecs import hookimpl


@hookimpl
def register_methods(register: Callable[[type], None]) -> None:
    """Register the built-in methods."""
