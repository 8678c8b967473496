"""Every adaptkit hook, typed and documented.

Built-in components register through these same hooks (see :mod:`adaptkit.builtins`), exactly
as a third-party plugin does. Registration hooks receive a ``register`` callback (llm style):
the core owns name resolution, so two components with one name is an error naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from adaptkit.component import BaseModels, DatasetAdapter, Method, Metric, ModelFamily, Optimizer, Sampler
    from adaptkit.recipe import Recipe
    from adaptkit.run import Run, TrainingResult

PROJECT = "adaptkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- registration


@hookspec
def register_datasets(register: Callable[[type[DatasetAdapter]], None]) -> None:
    """Register dataset adapters.

    Called once when the plugin manager is built. Call ``register(AdapterClass)`` for each
    :class:`adaptkit.DatasetAdapter` subclass; its ``name`` is what a recipe's
    ``[data] adapter = "…"`` refers to.
    """


@hookspec
def register_methods(register: Callable[[type[Method]], None]) -> None:
    """Register adaptation methods (``[method] name = "…"``).

    Call ``register(MethodClass)`` for each :class:`adaptkit.Method` subclass.
    """


@hookspec
def register_samplers(register: Callable[[type[Sampler]], None]) -> None:
    """Register samplers (``[sample] sampler = "…"``).

    Call ``register(SamplerClass)`` for each :class:`adaptkit.Sampler` subclass.
    """


@hookspec
def register_metrics(register: Callable[[type[Metric]], None]) -> None:
    """Register evaluation metrics.

    Call ``register(MetricClass)`` for each :class:`adaptkit.Metric` subclass. Its
    ``compute(context)`` receives an :class:`adaptkit.evaluation.EvalContext` (paired base and
    adapted images, references, options from ``[eval.<name>]``) and returns a list of
    :class:`adaptkit.evaluation.Figure`, each with a paired-bootstrap 95% CI over prompts; it
    raises :class:`adaptkit.evaluation.MetricUnavailable` when its model is not available.
    """


@hookspec
def register_base_models(register: Callable[[type[BaseModels]], None]) -> None:
    """Register named base models (``[model] base = "<name>:<model>"``).

    Call ``register(SourceClass)`` for each :class:`adaptkit.BaseModels` subclass; its ``name`` is
    the prefix before the colon (``embedded``, ``testing``).
    """


@hookspec
def register_model_families(register: Callable[[type[ModelFamily]], None]) -> None:
    """Register model families (``[model] family = "…"``, or found by ``"auto"``).

    Call ``register(FamilyClass)`` for each :class:`adaptkit.ModelFamily` subclass; a base that no
    registered family recognises is refused in one line naming what it is.
    """


@hookspec
def register_optimizers(register: Callable[[type[Optimizer]], None]) -> None:
    """Register optimizers (``[train] optimizer = "…"``, settings in ``[train.optimizer_options]``).

    Call ``register(OptimizerClass)`` for each :class:`adaptkit.Optimizer` subclass; one whose package
    is missing is refused in one line naming its ``requires``.
    """


@hookspec
def check_recipe(recipe: Recipe) -> list[str] | None:
    """Called when a recipe is resolved, before anything heavy is loaded.

    Return problems as lines ``"key.path: what is wrong (what is valid)"`` (or None). A plugin
    whose feature is enabled by a recipe key checks here that the rest of the recipe suits it,
    so a mistake is reported before training rather than after it.
    """


# --------------------------------------------------------------------------- training lifecycle


@hookspec
def on_train_start(run: Run) -> None:
    """Called once on every process after setup, before the first training step.

    ``run`` exposes the recipe, the run directory and the accelerator.
    """


@hookspec
def on_step_end(run: Run, step: int, logs: dict[str, Any]) -> None:
    """Called after each optimizer step that is logged (every ``train.log_every`` steps).

    ``step`` counts optimizer steps from 1; ``logs`` holds the figures written to
    ``metrics.jsonl`` (loss, lr, images_per_s, peak memory). Keep it cheap: it is on the hot path.
    """


@hookspec
def on_checkpoint(run: Run, path: Path) -> None:
    """Called on the main process after a complete checkpoint was written at ``path``."""


@hookspec
def on_train_end(run: Run, result: TrainingResult) -> None:
    """Called once on the main process after the final result and ``result.json`` were saved.

    ``result`` is a :class:`adaptkit.TrainingResult` (``steps``, ``wall_time_s``, ``images_per_s``,
    ``adapter_dir``, …). The built-in evaluation and model card run here (:mod:`adaptkit.builtins.reports`).
    """
