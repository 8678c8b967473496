"""``adaptkit sweep RECIPE --space SPACE.toml``: let the evidence choose the recipe."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="search recipe keys for the most style within a fidelity budget (writes runs/<sweep>/report.html)",
        description="Run trials of RECIPE with values from the space file (Optuna TPE, median pruning on the "
        "validation loss), judge each by its evaluation, and choose the trial with the most style gain whose "
        "fidelity loss stays within the budget. Run it again to continue; a finished trial is never rerun.",
    )
    parser.add_argument("recipe", metavar="RECIPE", help="recipe file or shipped recipe name")
    parser.add_argument(
        "--space", type=Path, required=True, metavar="SPACE.toml", help="what to search (a [space] table)"
    )
    parser.add_argument(
        "--name", help="the sweep's folder under runs/ (default: the space file's, else <recipe>-sweep)"
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage shared by every worker (default: sqlite in the sweep folder; "
        "e.g. postgresql://host/db for workers on several machines)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel workers on this machine (default 1; one GPU each)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.sweep.workers import run_sweep

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        run_sweep(args.recipe, args.space, args.name, args.storage, args.workers, say=say)
    except KeyboardInterrupt:
        say("sweep stopped; run the same command to continue (the stopped trial resumes from its checkpoint)")
        return 130
    return 0
