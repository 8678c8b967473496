"""The embedded world as a plugin: its base model, its style sets, and the probes that judge them.

Registered like any third party's plugin (listed in :data:`adaptkit.plugins.DEFAULT_PLUGINS`):

- ``embedded:<model>`` base models: sub-folders of ``adaptkit/embedded`` holding a diffusers
  pipeline (``embedded:tiny-sd`` ships with the package);
- the ``embedded-styles`` dataset (:mod:`adaptkit.embedded.dataset`), which declares its own
  evaluation prompt set and target style;
- the ``embedded_probes`` metric (:mod:`adaptkit.embedded.probe_metric`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.component import BaseModels
from adaptkit.embedded.dataset import EmbeddedStylesAdapter
from adaptkit.embedded.probe_metric import EmbeddedProbesMetric
from adaptkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from adaptkit.component import DatasetAdapter, Metric
    from adaptkit.recipe import Recipe


def embedded_root() -> Path:
    """The folder holding the package's embedded models (``adaptkit/embedded``)."""
    return Path(__file__).resolve().parent


class EmbeddedModels(BaseModels):
    """Diffusers pipelines shipped inside the package (``adaptkit/embedded/<model>/``)."""

    name = "embedded"
    description = "Models shipped inside the package: tiny-sd, pretrained on the embedded world (offline)."

    def models(self) -> list[str]:
        """Sub-folders of :func:`embedded_root` with a ``model_index.json``."""
        root = embedded_root()
        return sorted(child.name for child in root.iterdir() if (child / "model_index.json").is_file())

    def locate(self, model: str) -> Path:
        """``adaptkit/embedded/<model>``."""
        return embedded_root() / model


@hookimpl
def register_base_models(register: Callable[[type[BaseModels]], None]) -> None:
    """Register ``embedded:<model>``."""
    register(EmbeddedModels)


@hookimpl
def register_datasets(register: Callable[[type["DatasetAdapter"]], None]) -> None:
    """Register ``embedded-styles``."""
    register(EmbeddedStylesAdapter)


@hookimpl
def register_metrics(register: Callable[[type["Metric"]], None]) -> None:
    """Register ``embedded_probes``."""
    register(EmbeddedProbesMetric)


@hookimpl
def check_recipe(recipe: "Recipe") -> list[str] | None:
    """The probes judge the embedded styles only: asking for them on another dataset is a mistake."""
    if EmbeddedProbesMetric.name in recipe.eval.metric_names and recipe.data.adapter != EmbeddedStylesAdapter.name:
        key = "eval.embedded_probes" if recipe.eval.embedded_probes else "eval.metrics"
        return [f"{key}: needs data.adapter = {EmbeddedStylesAdapter.name!r} (got {recipe.data.adapter!r})"]
    return None
