"""``adaptkit compare``: one report across runs (e.g. LoRA vs LoHa vs full on one dataset)."""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptkit.cli.common import console
from adaptkit.cli.eval import add_trade_off_arguments, print_trade_offs, trade_off_settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="one report across runs: grid, metrics, style-gain vs fidelity-loss plot",
        description="Compare evaluated runs of one base model on the same prompts x seeds (runs without "
        "eval/metrics.json are evaluated first).",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="two or more run directories")
    parser.add_argument("--out", type=Path, default=Path("compare.html"), help="report path (default compare.html)")
    add_trade_off_arguments(parser, "allowed fidelity loss as a fraction of the base's fidelity (default 0.05)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.evaluation.compare import compare_runs
    from adaptkit.evaluation.ranking import best

    tolerance, style, fidelity = trade_off_settings(args)
    path, offs = compare_runs(args.run_dirs, args.out, tolerance, style, fidelity)
    if offs:
        print_trade_offs(offs, best(offs, tolerance), tolerance, "run")
    console.print(f"wrote {path}")
    return 0
