"""Built-in evaluation metrics (registered through ``register_metrics``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """No built-in metric yet: the evaluation issue adds them here."""
