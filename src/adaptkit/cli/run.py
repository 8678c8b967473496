"""``adaptkit run RECIPE``: train, checkpoint, sample and save."""

from __future__ import annotations

import argparse

from rich.table import Table

from adaptkit.cli.common import add_recipe_arguments, console
from adaptkit.resolve import load_and_resolve
from adaptkit.run import RunDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="train a recipe (e.g. adaptkit run recipes/demo.toml)",
        description="Train a recipe end to end: load the base model and dataset, train the method, "
        "write checkpoints, sample grids and the result into runs/<name>/.",
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="resume from the newest complete checkpoint of this run, or from CHECKPOINT",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument("--force", action="store_true", help="resume even if the recipe changed what is trained")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (plain log lines instead)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the base model and the dataset and print the plan (steps, epochs, caches) without training",
    )
    parser.set_defaults(handler=handle)


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this run where it stopped: the launcher's own (torchrun, accelerate
    launch) when one started it, else ``adaptkit run``."""
    from adaptkit.training.launcher import current_launch

    alone = ["adaptkit", "run", args.recipe, *(word for o in args.overrides for word in ("--set", o))]
    return current_launch().resume_command(alone)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.training.signals import TrainingInterrupted
    from adaptkit.training.trainer import train_recipe

    resolved = load_and_resolve(args.recipe, args.overrides)
    if args.dry_run:
        from adaptkit.training.plan import plan_run

        for line in plan_run(resolved).lines():
            console.print(line)
        return 0
    try:
        result = train_recipe(
            resolved, resume=args.resume, overwrite=args.overwrite, force=args.force, show_progress=not args.no_progress
        )
    except TrainingInterrupted as stopped:
        if stopped.checkpoint is not None:  # the main process
            console.print(f"{stopped}; checkpoint: {stopped.checkpoint}")
            console.print(f"resume with: {resume_command(args)}")
        return stopped.exit_code
    if not result.main_process:
        return 0
    table = Table(title=f"run {resolved.run_name}", show_header=False)
    table.add_row("steps", str(result.steps))
    table.add_row("final loss", f"{result.final_loss:.4f}")
    table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    table.add_row("throughput", f"{result.images_per_s:.2f} images/s")
    table.add_row("examples", f"{result.examples} (skipped {result.skipped_examples})")
    if result.truncated_captions:
        table.add_row("captions cut", f"{result.truncated_captions} drawn captions exceeded the text encoder's length")
    table.add_row("result", result.adapter_dir)
    table.add_row("samples", str(RunDir(resolved.run_dir).samples))
    console.print(table)
    return 0
