"""``adaptkit eval``: before/after evaluation of a run, its checkpoints, and the best trade-off."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adaptkit.cli.common import console
from adaptkit.errors import UserError

#: The ``sample.*`` keys an evaluation uses (its prompts and seeds come from ``[eval]``).
EVALUATION_SAMPLE_KEYS = ("sampler", "options", "steps", "guidance", "negative_prompt", "resolution")


def changes_evaluation(override: str) -> bool:
    """Whether ``adaptkit eval --set KEY=VALUE`` may change ``KEY``: any ``eval.*`` key and the sample
    settings an evaluation uses; what the run trained (and ``sample.every/prompts/seeds``) is fixed."""
    section, _, rest = override.partition("=")[0].strip().partition(".")
    return section == "eval" or (section == "sample" and rest.split(".")[0] in EVALUATION_SAMPLE_KEYS)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a run's adapted model against its base model (writes eval/metrics.json, eval/report.html)",
        description="Generate the same prompts x seeds with the base and the adapted model, score them with the "
        "metrics of the recipe's [eval] table (or every registered metric) and write RUN_DIR/eval/.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument(
        "--checkpoints",
        metavar="all|latest|PATH",
        help="score checkpoints instead of the result: all (and rank them), latest, or one checkpoint folder",
    )
    parser.add_argument("--metric", action="append", help="metric to compute (repeatable; default: the recipe's)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change an eval.* or sample.* key of the run's recipe for this evaluation, e.g. "
        "--set eval.seeds_per_prompt=4 (repeatable)",
    )
    add_trade_off_arguments(
        parser, "with --checkpoints all: allowed fidelity loss as a fraction of the base's fidelity (default 0.05)"
    )
    parser.set_defaults(handler=handle)


def add_trade_off_arguments(parser: argparse.ArgumentParser, tolerance_help: str) -> None:
    """``--tolerance``, ``--style-figure`` and ``--fidelity-figure`` (also used by ``adaptkit compare``)."""
    parser.add_argument("--tolerance", type=float, default=None, help=tolerance_help)
    parser.add_argument(
        "--style-figure", metavar="METRIC[/FIGURE]", help="style axis (default: style, else embedded_probes)"
    )
    parser.add_argument(
        "--fidelity-figure", metavar="METRIC[/FIGURE]", help="fidelity axis (default: clip_score, else embedded_probes)"
    )


def trade_off_settings(args: argparse.Namespace) -> tuple[float, list[Any], list[Any]]:
    """``(tolerance, style axes, fidelity axes)`` from :func:`add_trade_off_arguments`' options."""
    from adaptkit.evaluation.ranking import DEFAULT_TOLERANCE, FIDELITY_AXES, STYLE_AXES, parse_axis

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not 0 <= tolerance < 1:
        raise UserError(f"--tolerance {args.tolerance}: must be a fraction in [0, 1), e.g. 0.05")
    style = [parse_axis(args.style_figure)] if args.style_figure else list(STYLE_AXES)
    fidelity = [parse_axis(args.fidelity_figure)] if args.fidelity_figure else list(FIDELITY_AXES)
    return tolerance, style, fidelity


def chosen_checkpoints(run_dir: Path, choice: str | None) -> list[Path | None]:
    """``None`` (the run's result) or the checkpoint folders ``--checkpoints`` names."""
    from adaptkit.run import RunDir
    from adaptkit.training.checkpoint import is_complete, list_checkpoints

    root = RunDir(run_dir).checkpoints
    if choice is None:
        return [None]
    if choice in ("all", "latest"):
        found = [p for p in list_checkpoints(root) if is_complete(p)]
        if not found:
            raise UserError(f"--checkpoints {choice}: no complete checkpoint in {root}")
        return list(found) if choice == "all" else [found[-1]]
    if not is_complete(Path(choice)):
        raise UserError(f"--checkpoints {choice}: not a complete checkpoint folder (want all, latest or a path)")
    return [Path(choice)]


def handle(args: argparse.Namespace) -> int:
    from adaptkit.evaluation.runner import RANKING_JSON, evaluate_checkpoints
    from adaptkit.run import RunDir, to_json

    tolerance, style, fidelity = trade_off_settings(args)
    if args.checkpoints != "all" and (args.tolerance, args.style_figure, args.fidelity_figure) != (None, None, None):
        raise UserError("--tolerance, --style-figure, --fidelity-figure: only used with --checkpoints all")
    for text in args.overrides:
        if not changes_evaluation(text):
            raise UserError(
                f"--set {text}: only eval.* keys and sample.{{{','.join(EVALUATION_SAMPLE_KEYS)}}} change an "
                "evaluation (what the run trained is fixed; start a new run to change it)"
            )
    checkpoints = chosen_checkpoints(args.run_dir, args.checkpoints)
    results = evaluate_checkpoints(args.run_dir, checkpoints, args.metric, args.overrides)
    if args.checkpoints == "all":
        ranking = rank_results(results, tolerance, style, fidelity)
        (RunDir(args.run_dir).eval / RANKING_JSON).write_text(to_json(ranking, indent=2), encoding="utf-8")
    console.print(f"wrote {RunDir(args.run_dir).eval}")
    return 0


def print_trade_offs(offs: list[Any], chosen: Any, tolerance: float, what: str) -> None:
    """The trade-off table with the best row marked, then the rule."""
    from rich.table import Table

    from adaptkit.evaluation.ranking import rule_text

    title = f"{what}: style gain ({offs[0].style_figure}) vs fidelity loss ({offs[0].fidelity_figure})"
    table = Table(title=title)
    for column in (what, "style gain", "fidelity loss", f"within {tolerance:.0%}", "best"):
        table.add_column(column)
    for t in offs:
        within = "yes" if t.within(tolerance) else "no"
        table.add_row(
            t.label, f"{t.style_gain:+.3g}", f"{t.fidelity_loss:+.3g}", within, "◀ best" if t is chosen else ""
        )
    console.print(table)
    console.print(f"rule: {rule_text(tolerance)}")


def rank_results(results: list[Any], tolerance: float, style: list[Any], fidelity: list[Any]) -> dict[str, Any]:
    """Print the checkpoints' trade-offs with the best one marked, and return them for ``ranking.json``."""
    from dataclasses import asdict

    from adaptkit.evaluation.ranking import best, rule_text, trade_off

    offs = [t for t in (trade_off(r.checkpoint, r.figures, style, fidelity) for r in results) if t is not None]
    if not offs:
        console.print("no style and fidelity figures to rank (see --style-figure / --fidelity-figure)")
        return {"rule": rule_text(tolerance), "tolerance": tolerance, "best": None, "checkpoints": []}
    chosen = best(offs, tolerance)
    print_trade_offs(offs, chosen, tolerance, "checkpoint")
    return {
        "rule": rule_text(tolerance),
        "tolerance": tolerance,
        "best": chosen.label if chosen else None,
        "checkpoints": [asdict(t) for t in offs],
    }
