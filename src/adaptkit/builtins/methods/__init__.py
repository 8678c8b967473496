"""Built-in adaptation methods (registered through ``register_methods``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.builtins.methods.full import FullMethod
from adaptkit.builtins.methods.loha import LohaMethod
from adaptkit.builtins.methods.lora import LoraMethod
from adaptkit.hookspecs import hookimpl

__all__ = ["FullMethod", "LohaMethod", "LoraMethod", "register_methods"]


@hookimpl
def register_methods(register: Callable[[type], None]) -> None:
    """Register the built-in methods: full, lora, loha."""
    register(FullMethod)
    register(LoraMethod)
    register(LohaMethod)
