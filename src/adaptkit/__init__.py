"""adaptkit: adapt Stable Diffusion to a visual style, with the evidence to show it.

The public API for plugin authors lives here (and the test kit in :mod:`adaptkit.testing`);
everything else is private and may move. The contracts are in the package root
(``hookspecs``, ``component``, ``plugins``, ``run``, ``errors``, ``resolve``); the base classes a
plugin builds on are exported by name below and imported on first use, so ``import adaptkit``
stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from adaptkit.component import (
    BaseModels,
    Conditioning,
    DatasetAdapter,
    Example,
    KohyaModule,
    Method,
    Metric,
    ModelFamily,
    Optimizer,
    Options,
    Sampler,
    StyleDataset,
)
from adaptkit.errors import UserError
from adaptkit.hookspecs import hookimpl
from adaptkit.recipe import ModelSection, Recipe

__version__ = "0.1.0"

#: Public names imported on first access, by the module that defines them.
_LAZY: dict[str, str] = {
    # methods
    "AdapterOptions": "adaptkit.builtins.methods.peft_common",
    "PeftMethod": "adaptkit.builtins.methods.peft_common",
    "PeftFormatMethod": "adaptkit.builtins.methods.peft_format",
    # datasets backed by a Hub id or a local copy
    "SourceAdapter": "adaptkit.data.adapter",
    "SourceOptions": "adaptkit.data.adapter",
    "source_field": "adaptkit.data.adapter",
    "SourceSpec": "adaptkit.data.loading",
    "ColumnMap": "adaptkit.data.columns",
    "detect_image_column": "adaptkit.data.columns",
    # metrics
    "BootstrapOptions": "adaptkit.evaluation.bootstrap",
    "paired_figure": "adaptkit.evaluation.bootstrap",
    "EvalContext": "adaptkit.evaluation.context",
    "EvalPairs": "adaptkit.evaluation.context",
    "Figure": "adaptkit.evaluation.context",
    "MetricUnavailable": "adaptkit.evaluation.context",
    # models and runs
    "SDComponents": "adaptkit.models",
    "load_base_model": "adaptkit.models",
    "Run": "adaptkit.run",
    "RunDir": "adaptkit.run",
    "TrainingResult": "adaptkit.run",
}

if TYPE_CHECKING:
    from adaptkit.builtins.methods.peft_common import AdapterOptions, PeftMethod
    from adaptkit.builtins.methods.peft_format import PeftFormatMethod
    from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
    from adaptkit.data.columns import ColumnMap, detect_image_column
    from adaptkit.data.loading import SourceSpec
    from adaptkit.evaluation.bootstrap import BootstrapOptions, paired_figure
    from adaptkit.evaluation.context import EvalContext, EvalPairs, Figure, MetricUnavailable
    from adaptkit.models import SDComponents, load_base_model
    from adaptkit.run import Run, RunDir, TrainingResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AdapterOptions",
    "BaseModels",
    "BootstrapOptions",
    "ColumnMap",
    "Conditioning",
    "DatasetAdapter",
    "detect_image_column",
    "EvalContext",
    "EvalPairs",
    "Example",
    "Figure",
    "hookimpl",
    "KohyaModule",
    "load_base_model",
    "Method",
    "Metric",
    "MetricUnavailable",
    "ModelFamily",
    "ModelSection",
    "Optimizer",
    "Options",
    "paired_figure",
    "PeftFormatMethod",
    "PeftMethod",
    "Recipe",
    "Run",
    "RunDir",
    "Sampler",
    "SDComponents",
    "source_field",
    "SourceAdapter",
    "SourceOptions",
    "SourceSpec",
    "StyleDataset",
    "TrainingResult",
    "UserError",
    "__version__",
]
