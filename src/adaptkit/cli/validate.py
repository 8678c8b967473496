"""``adaptkit validate RECIPE``: check a recipe without running it."""

from __future__ import annotations

import argparse

from rich.syntax import Syntax

from adaptkit.cli.common import add_recipe_arguments, console
from adaptkit.recipe.dump import dump_toml
from adaptkit.resolve import load_and_resolve


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a recipe and print it resolved (all defaults filled in)",
        description="Validate a recipe: every key, type, range and component option. "
        "Prints the resolved recipe, or one line per error (exit status 2).",
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also check that the base model and the dataset exist (offline) and print the run's plan",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    resolved = load_and_resolve(args.recipe, args.overrides)
    text = dump_toml(resolved.recipe.model_dump(mode="json", exclude_none=True))
    console.print(Syntax(text, "toml", theme="ansi_dark", background_color="default"))
    if args.deep:
        from adaptkit.training.plan import plan_run

        for line in plan_run(resolved).lines():
            console.print(line)
    console.print(f"[green]ok[/]: {args.recipe} is valid (run directory: {resolved.run_dir})")
    return 0
