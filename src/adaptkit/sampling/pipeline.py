"""Build a sampling pipeline from a base model plus, optionally, a run's saved result.

A checkpoint's weights (rather than the result's) come from
:func:`adaptkit.training.checkpoint.checkpoint_model`, made a pipeline by :func:`sampling_pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from adaptkit.component import Sampler
from adaptkit.errors import UserError
from adaptkit.plugins import Components
from adaptkit.recipe import ModelSection, Recipe
from adaptkit.resolve import build_component
from adaptkit.run import ADAPTER_DIR, RunDir, read_run_recipe


def run_components(model: ModelSection, recipe: Recipe | None):
    """The base model's components, with the schedule ``recipe``'s run trained with (prediction type,
    zero terminal SNR)."""
    from adaptkit.models import load_base_model
    from adaptkit.models.schedule import apply_schedule

    components = load_base_model(model)
    if recipe is not None:
        apply_schedule(recipe.train, components)
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


def check_sampler(sampler: Sampler, family, key: str = "sample.sampler") -> None:
    """A sampler that cannot drive ``family``'s objective is a one-line UserError listing those that can."""
    if family.objective in sampler.objectives:
        return
    from adaptkit.plugins import get_plugin_manager

    able = [name for name, entry in get_plugin_manager().collect().samplers if family.objective in entry.cls.objectives]
    raise UserError(
        f"{key} = {sampler.name!r} cannot drive model family {family.name} ({family.objective} objective); "
        f"samplers that can: {', '.join(able) or 'none installed'}"
    )


def sampling_pipeline(components, sampler: Sampler):
    """A pipeline sharing ``components``' modules, with ``sampler``'s scheduler built from the base model's config."""
    check_sampler(sampler, components.family)
    return components.pipeline(sampler.build(dict(components.scheduler_config)))


def cut_prompts(tokenizer, prompts: Sequence[str]) -> int:
    """How many of ``prompts`` are longer than ``tokenizer``'s window (``model_max_length`` tokens,
    start and end included), so the pipeline cuts them."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=False, padding=False).input_ids]
    return sum(length > tokenizer.model_max_length for length in lengths)


def load_pipeline(model: ModelSection, sampler: Sampler, registries: Components, run_dir: Path | None = None):
    """The family's sampling pipeline for ``model`` with ``sampler``; with ``run_dir``, the run's
    result (adapter or fine-tuned weights) applied by the method that produced it."""
    recipe = read_run_recipe(run_dir) if run_dir is not None else None
    components = run_components(model, recipe)
    pipeline = sampling_pipeline(components, sampler)
    if recipe is None or run_dir is None:
        return pipeline
    files = RunDir(run_dir)
    method = run_method(registries, recipe, str(files.recipe))
    adapter = files.adapter
    if not adapter.is_dir():
        raise UserError(f"{run_dir}: the run has no {ADAPTER_DIR}/ folder (did it finish?)")
    return method.apply(pipeline, adapter)
