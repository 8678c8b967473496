"""Checks the recipe's ``[log] trackers`` when it is resolved: a tracker whose package is missing is
one line saying how to install it (``adaptkit validate`` shows it too). The trackers themselves are
opened by the trainer (:mod:`adaptkit.training.trackers`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from adaptkit.recipe import Recipe


@hookimpl
def check_recipe(recipe: "Recipe") -> list[str]:
    """Report missing tracker packages before anything loads."""
    from adaptkit.training.trackers import missing

    return missing(recipe.log)
