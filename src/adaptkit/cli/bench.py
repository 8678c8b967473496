"""``adaptkit bench``: throughput, step time, peak memory, FLOPs and MFU of training scenarios."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from adaptkit.cli.common import console
from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.component import ModelFamily

QUICK_RESOLUTION = 64


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark training scenarios (e.g. adaptkit bench --quick)",
        description="Train each scenario (method × attention × optimizer × precision × EMA × gradient "
        "checkpointing × caching) for a few steps on synthetic images, each in a fresh process, and report "
        "images/s, step time p50/p95, peak memory, FLOPs per image and MFU. Default model: the SD v1.5 "
        "architecture with random weights at 512 px (no download).",
    )
    parser.add_argument("--model", default=None, help="model.base to bench (default: the --family's random model)")
    parser.add_argument(
        "--family",
        default=None,
        help="model family whose architecture to bench with random weights (default sd1: testing:sd15-random; "
        "sdxl: testing:sdxl-random)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the family's tiny test model (testing:tiny-sd for sd1) at 64 px"
    )
    parser.add_argument(
        "--resolution", type=int, default=None, help="image size in px (default: the family's, 512 for sd1; --quick 64)"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per step (default 1)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per scenario (default 5)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (default 2; FLOPs counted on the first)"
    )
    parser.add_argument("--lora-rank", type=int, default=4, help="rank of lora/loha (default 4)")
    parser.add_argument(
        "--scenarios",
        default=None,
        metavar="PATTERNS",
        help="comma-separated name patterns, e.g. 'lora/*,full/*/cached'",
    )
    parser.add_argument(
        "--matrix", action="store_true", help="every combination of every axis (default: one axis at a time)"
    )
    parser.add_argument(
        "--file", default=None, metavar="TOML", help="scenarios from [[scenario]] tables (benchmarks/scenarios.toml)"
    )
    parser.add_argument("--list", action="store_true", help="print the scenario names and exit")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the full report as JSON")
    parser.add_argument("--csv", default=None, metavar="PATH", help="write one row per scenario as CSV")
    parser.add_argument(
        "--compare", default=None, metavar="OLD.json", help="flag regressions against an earlier --json report"
    )
    parser.add_argument(
        "--workdir", default=None, help="folder for runs, logs and images (default: a temporary folder)"
    )
    parser.add_argument(
        "--matmul-size",
        type=int,
        default=None,
        help="side of the square matmul timed for MFU (default 2048 CPU, 8192 GPU)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.bench.compare import compare_reports, load_report
    from adaptkit.bench.measure import BenchConfig
    from adaptkit.bench.report import comparison_table, results_table, skipped_lines, write_csv, write_json
    from adaptkit.bench.runner import run_bench
    from adaptkit.bench.scenarios import full_matrix, load_scenario_file, one_factor_at_a_time, select

    _check_numbers(args)
    scenarios = load_scenario_file(args.file) if args.file else full_matrix() if args.matrix else one_factor_at_a_time()
    scenarios = select(scenarios, args.scenarios)
    if args.list:
        for scenario in scenarios:
            console.print(scenario.name)
        return 0
    old = load_report(args.compare) if args.compare else None  # a bad file fails before the long part
    family = _bench_family(args.family)
    assert family.bench_models is not None
    model = args.model or family.bench_models[1 if args.quick else 0]
    _check_model(model)
    config = BenchConfig(
        model=model,
        resolution=args.resolution or (QUICK_RESOLUTION if args.quick else family.native_resolution),
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        lora_rank=args.lora_rank,
        workdir=str(Path(args.workdir).resolve()) if args.workdir else "",
        matmul_size=args.matmul_size,
    )
    console.print(
        f"benching {len(scenarios)} scenario(s) on {model} at {config.resolution} px, batch {config.batch_size}"
    )
    report = run_bench(scenarios, config, on_result=lambda r: console.print(f"  {r['scenario']}: {_summary(r)}"))
    title = f"adaptkit bench — {model}, {config.resolution} px, batch {config.batch_size}"
    _wide().print(results_table(report["results"], title))
    for line in skipped_lines(report["results"]):
        console.print(line)
    if args.json:
        console.print(f"wrote {write_json(args.json, report)}")
    if args.csv:
        console.print(f"wrote {write_csv(args.csv, report['results'])}")
    if old is not None:
        changes = compare_reports(old, report)
        _wide().print(comparison_table(changes, args.compare))
        regressions = [c for c in changes if c.regression]
        if regressions:
            console.print(f"[red]{len(regressions)} regression(s) beyond noise[/]")
            return 1
    return 0


def _wide() -> Console:
    """The shared console on a terminal; a 160-column one when writing to a file or pipe (tables stay whole)."""
    return console if console.is_terminal else Console(highlight=False, width=160)


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value, low in (
        ("--steps", args.steps, 1),
        ("--warmup", args.warmup, 0),
        ("--batch-size", args.batch_size, 1),
        ("--lora-rank", args.lora_rank, 1),
    ):
        if value < low:
            raise UserError(f"{flag} = {value} is too small (at least {low})")
    if args.resolution is not None and (args.resolution < 8 or args.resolution % 8):
        raise UserError(f"--resolution = {args.resolution} must be a multiple of 8 (e.g. 512)")


def _bench_family(name: str | None) -> "ModelFamily":
    """The ``--family`` (default: the fallback family, SD v1) — one that names random-weight bench models."""
    from adaptkit.models.family import model_families

    families = model_families()
    benchable = [n for n, entry in families if entry.cls.bench_models is not None]
    if name is None:
        chosen = next(entry.cls for _, entry in families if entry.cls.fallback and entry.cls.bench_models)
        return chosen()
    if name not in benchable:
        raise UserError(f"--family = {name!r}: no random-weight bench model for it (valid: {', '.join(benchable)})")
    return families.get(name).cls()


def _check_model(model: str) -> None:
    from adaptkit.models.source import resolve_base
    from adaptkit.recipe import ModelSection

    try:
        resolve_base(ModelSection(base=model))
    except UserError as exc:
        raise UserError(str(exc).replace("model.base", "--model", 1)) from None


def _summary(result: dict) -> str:
    if result["status"] != "ok":
        return f"{result['status']} ({result.get('reason')})"
    rate, step, peak = result["images_per_s"], result["step_s_p50"], result["peak_memory_mb"]
    return f"{rate:.3g} images/s, step {step:.3f} s, peak {peak:.0f} MiB"
