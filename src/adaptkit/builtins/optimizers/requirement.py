"""Importing an optimizer's package, or saying in one line what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from adaptkit.errors import UserError


def import_package(module: str, optimizer: str, requirement: str, extra: str = "optimizers") -> ModuleType:
    """``module``, imported; a UserError naming the requirement and adaptkit's extra when it cannot be."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken native library (bitsandbytes)
        raise UserError(
            f"train.optimizer = {optimizer!r} needs {requirement}, which failed to import ({exc}); "
            f"pip install '{requirement}' (or 'adaptkit[{extra}]')"
        ) from exc
