"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """``RECIPE`` and repeatable ``--set KEY.PATH=VALUE``."""
    parser.add_argument(
        "recipe",
        metavar="RECIPE",
        help="a TOML recipe file (e.g. recipes/demo.toml) or a shipped recipe's name (e.g. demo)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a recipe value (TOML syntax), e.g. --set train.steps=10; repeatable",
    )
