"""Built-in dataset adapters (registered through ``register_datasets``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[type], None]) -> None:
    """Register the built-in dataset adapters."""
