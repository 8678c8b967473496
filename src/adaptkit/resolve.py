"""A recipe plus the plugin manager -> instantiated, validated components.

All problems (unknown component names, bad options) are collected and raised together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from adaptkit.component import Component, DatasetAdapter, Method, Optimizer, Sampler
from adaptkit.errors import UserError
from adaptkit.plugins import Components, PluginManager, Registry, get_plugin_manager
from adaptkit.recipe import Recipe, format_validation_error, load_recipe
from adaptkit.recipe.overrides import RecipeSource, source_of

C = TypeVar("C", bound=Component)


@dataclass
class ResolvedRecipe:
    """A validated recipe with its components built."""

    recipe: Recipe
    path: Path
    manager: PluginManager
    registries: Components
    dataset: DatasetAdapter
    method: Method
    sampler: Sampler
    optimizer: Optimizer
    #: The adapters of ``[[data.sets]]``, in order.
    extra_datasets: list[DatasetAdapter] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        return self.recipe.run.name or self.path.stem

    @property
    def run_dir(self) -> Path:
        return Path(self.recipe.run.output_dir) / self.run_name


def build_component(
    registry: Registry[C],
    name: str,
    options: dict[str, Any],
    source: str,
    key: str,
    errors: list[str],
    options_key: str | None = None,
) -> C | None:
    """Instantiate ``name`` from ``registry`` with ``options`` validated; append problems to ``errors``.

    Option errors are named ``<options_key>.<field>``; ``options_key`` defaults to the ``options``
    table beside ``key`` (``method.name`` -> ``method.options``).
    """
    if name not in registry:
        errors.append(f"{source_of(source, key)}: {key}: {registry.unknown_message(name)}")
        return None
    cls = registry.get(name).cls
    options_key = (options_key or key.rsplit(".", 1)[0] + ".options") + "."
    try:
        parsed = cls.Options.model_validate(options)
    except ValidationError as exc:
        errors.extend(format_validation_error(source, exc, cls.Options, prefix=options_key))
        return None
    return cls(parsed)


def resolve_recipe(
    recipe: Recipe, path: Path, manager: PluginManager | None = None, overrides: Sequence[str] = ()
) -> ResolvedRecipe:
    """Build the recipe's dataset, method, sampler and metrics through the plugin registries;
    raise :class:`UserError` listing every problem (a value set by one of ``overrides`` is blamed
    on that ``--set``)."""
    source = RecipeSource(path, overrides)
    if manager is None:
        manager = get_plugin_manager(recipe.plugins.modules, base_dir=path.parent, source=source)
    registries = manager.collect()
    errors: list[str] = []
    dataset = build_component(
        registries.datasets, recipe.data.adapter, recipe.data.options, source, "data.adapter", errors
    )
    extra = [
        build_component(
            registries.datasets, entry.adapter, entry.options, source, f"data.sets.{i}.adapter", errors,
            f"data.sets.{i}.options",
        )
        for i, entry in enumerate(recipe.data.sets)
    ]  # fmt: skip
    method = build_component(
        registries.methods, recipe.method.name, recipe.method.options, source, "method.name", errors
    )
    sampler = build_component(
        registries.samplers, recipe.sample.sampler, recipe.sample.options, source, "sample.sampler", errors
    )
    if recipe.model.family != "auto" and recipe.model.options:  # an auto family's are checked once detected
        build_component(
            registries.model_families, recipe.model.family, recipe.model.options, source, "model.family", errors
        )
    optimizer = build_component(
        registries.optimizers,
        recipe.train.optimizer,
        recipe.train.optimizer_options,
        source,
        "train.optimizer",
        errors,
        "train.optimizer_options",
    )
    missing = optimizer.unavailable() if optimizer is not None else None
    if missing:
        errors.append(f"{source_of(source, 'train.optimizer')}: {missing}")
    for name in recipe.eval.metric_names:  # caught here, not when evaluation starts after training
        options = recipe.eval.metric_options(name)
        build_component(registries.metrics, name, options, source, "eval.metrics", errors, f"eval.{name}")
    for problems in manager.hook.check_recipe(recipe=recipe):
        errors.extend(f"{source}: {line}" for line in problems or [])
    if errors:
        raise UserError.collect(errors)
    assert dataset is not None and method is not None and sampler is not None and optimizer is not None
    sets = [adapter for adapter in extra if adapter is not None]
    return ResolvedRecipe(recipe, path, manager, registries, dataset, method, sampler, optimizer, sets)


def load_and_resolve(path: str | Path, overrides: list[str] | None = None) -> ResolvedRecipe:
    """Read, validate and resolve a recipe file (or a shipped recipe's name, :func:`locate_recipe`);
    raise :class:`UserError` listing every problem."""
    from adaptkit.recipe.shipped import locate_recipe

    path = locate_recipe(path)
    recipe = load_recipe(path, overrides)
    return resolve_recipe(recipe, path, overrides=overrides or ())
