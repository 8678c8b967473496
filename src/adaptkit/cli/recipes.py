"""``adaptkit recipes``: the recipes that ship with adaptkit, runnable by name (``adaptkit run demo``)."""

from __future__ import annotations

import argparse

from rich.table import Table

from adaptkit.cli.common import console
from adaptkit.recipe.shipped import shipped_recipes


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recipes",
        help="list the shipped recipes (run one by name: adaptkit run demo)",
        description="List the recipes shipped inside the package. Any command that takes a RECIPE accepts "
        "their name; --path prints where one is, to copy it and edit your own.",
    )
    parser.add_argument("--path", metavar="NAME", help="print the file of the shipped recipe NAME")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.recipe.shipped import locate_recipe

    if args.path:
        print(locate_recipe(args.path))
        return 0
    table = Table(title="shipped recipes (adaptkit run NAME)")
    for column in ("name", "what it does"):
        table.add_column(column, overflow="fold")
    for recipe in shipped_recipes():
        table.add_row(recipe.name, recipe.summary)
    console.print(table)
    return 0
