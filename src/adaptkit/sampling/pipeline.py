"""Build a sampling pipeline from a base model plus, optionally, a run's saved result."""

from __future__ import annotations

from pathlib import Path

from adaptkit.component import Sampler
from adaptkit.errors import UserError
from adaptkit.plugins import Components
from adaptkit.recipe import ModelSection, Recipe
from adaptkit.resolve import build_component
from adaptkit.run import ADAPTER_DIR, RunDir, read_run_recipe


def run_components(model: ModelSection, recipe: Recipe | None):
    """The base model's components, with the scheduler set to predict what ``recipe``'s run trained."""
    from adaptkit.models import load_base_model

    components = load_base_model(model)
    if recipe is not None and recipe.train.prediction_type:
        components.scheduler_config["prediction_type"] = recipe.train.prediction_type
    return components


def run_method(registries: Components, recipe: Recipe, source: str):
    """The method component that produced a run (UserError naming ``source`` when unknown)."""
    errors: list[str] = []
    method = build_component(
        registries.methods, recipe.method.name, recipe.method.options, source, "method.name", errors
    )
    if method is None:
        raise UserError.collect(errors)
    return method


def load_pipeline(model: ModelSection, sampler: Sampler, registries: Components, run_dir: Path | None = None):
    """A ``StableDiffusionPipeline`` for ``model`` with ``sampler``; with ``run_dir``, the run's
    result (adapter or fine-tuned weights) applied by the method that produced it."""
    recipe = read_run_recipe(run_dir) if run_dir is not None else None
    components = run_components(model, recipe)
    pipeline = components.pipeline(sampler.build(dict(components.scheduler_config)))
    if recipe is None or run_dir is None:
        return pipeline
    files = RunDir(run_dir)
    method = run_method(registries, recipe, str(files.recipe))
    adapter = files.adapter
    if not adapter.is_dir():
        raise UserError(f"{run_dir}: the run has no {ADAPTER_DIR}/ folder (did it finish?)")
    return method.apply(pipeline, adapter)
