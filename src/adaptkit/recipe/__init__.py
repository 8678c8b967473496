"""Recipes: the typed TOML schema, ``--set`` overrides, the resolved-recipe dump and the recipe reference.

- :mod:`adaptkit.recipe.schema` — the pydantic sections (``extra="forbid"``);
- :mod:`adaptkit.recipe.loading` — reading TOML, :func:`load_recipe`, one-line validation errors;
- :mod:`adaptkit.recipe.overrides` — ``--set KEY=VALUE`` parsing and :class:`~adaptkit.recipe.overrides.RecipeSource`;
- :mod:`adaptkit.recipe.dump` — a recipe back to TOML (the run folder's ``recipe.toml``);
- :mod:`adaptkit.recipe.docs` — ``docs/recipes.md``, generated from the schema;
- :mod:`adaptkit.recipe.shipped` — the recipes that ship inside the package (``adaptkit run demo``).
"""

from adaptkit.recipe.loading import format_validation_error, load_recipe, parse_recipe, read_toml
from adaptkit.recipe.schema import (
    CheckpointSection,
    DataSection,
    DataSetSection,
    EmaSection,
    EvalSection,
    LogSection,
    MethodSection,
    ModelSection,
    PluginsSection,
    PromptSetName,
    Recipe,
    RunSection,
    SampleSection,
    TrainSection,
    ValidationSection,
)

__all__ = [
    "CheckpointSection",
    "DataSection",
    "DataSetSection",
    "EmaSection",
    "EvalSection",
    "LogSection",
    "MethodSection",
    "ModelSection",
    "PluginsSection",
    "PromptSetName",
    "Recipe",
    "RunSection",
    "SampleSection",
    "ValidationSection",
    "TrainSection",
    "format_validation_error",
    "load_recipe",
    "parse_recipe",
    "read_toml",
]
