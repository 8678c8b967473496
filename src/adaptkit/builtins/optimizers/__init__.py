"""Built-in optimizers (``[train] optimizer``): torch's AdamW, and from their maintained packages
bitsandbytes' 8-bit AdamW and Lion, Prodigy, schedule-free AdamW and transformers' Adafactor.

Registered through the same hook as a plugin's; one whose package is missing is refused in one line
naming the extra to install (``pip install 'adaptkit[optimizers]'``).
"""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.builtins.optimizers.adafactor import AdafactorOptimizer
from adaptkit.builtins.optimizers.adamw import AdamW, AdamW8bit
from adaptkit.builtins.optimizers.lion import Lion8bit
from adaptkit.builtins.optimizers.prodigy import ProdigyOptimizer
from adaptkit.builtins.optimizers.schedule_free import ScheduleFreeAdamW
from adaptkit.component import Optimizer
from adaptkit.hookspecs import hookimpl

BUILTIN_OPTIMIZERS: tuple[type[Optimizer], ...] = (
    AdamW,
    AdamW8bit,
    Lion8bit,
    ProdigyOptimizer,
    ScheduleFreeAdamW,
    AdafactorOptimizer,
)


@hookimpl
def register_optimizers(register: Callable[[type[Optimizer]], None]) -> None:
    """Register the built-in optimizers."""
    for cls in BUILTIN_OPTIMIZERS:
        register(cls)
