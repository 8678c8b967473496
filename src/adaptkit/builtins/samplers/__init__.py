"""Built-in samplers (registered through ``register_samplers``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.hookspecs import hookimpl


@hookimpl
def register_samplers(register: Callable[[type], None]) -> None:
    """Register the built-in samplers."""
