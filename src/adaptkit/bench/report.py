"""Bench results as a rich table, JSON (everything) and CSV (one row per scenario)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.table import Table

from adaptkit.bench.compare import Change
from adaptkit.bench.scenarios import AXES
from adaptkit.run import to_json

#: CSV columns: the scenario, its axes, its status and its figures.
CSV_FIELDS: tuple[str, ...] = (
    "scenario",
    *AXES,
    "status",
    "reason",
    "images_per_s",
    "step_s_p50",
    "step_s_p95",
    "timed_steps",
    "peak_memory_mb",
    "flops_per_image",
    "matmul_flops_per_s",
    "matmul_spread",
    "time_to_first_step_s",
    "cache_fill_ms_per_image",
    "mfu",
    "datasheet_flops_per_s",
    "mfu_datasheet",
    "optimizer_state_bytes",
    "trainable_params",
    "ema_bytes",
    "ema_accelerator_bytes",
    "device",
)


def write_json(path: str | Path, report: dict[str, Any]) -> Path:
    """The whole report (config and every result, step times included) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(report, indent=2) + "\n", encoding="utf-8")
    return path


def write_csv(path: str | Path, results: list[dict[str, Any]]) -> Path:
    """One row per scenario with :data:`CSV_FIELDS` (empty cells where a figure does not apply)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for result in results:
            writer.writerow({key: "" if result.get(key) is None else result.get(key) for key in CSV_FIELDS})
    return path


def results_table(results: list[dict[str, Any]], title: str) -> Table:
    """Images/s, step time, memory, FLOPs, MFU and state sizes; skipped/failed rows give the reason."""
    table = Table(title=title)
    for header in (
        "scenario",
        "img/s",
        "step p50 s",
        "p95 s",
        "peak MiB",
        "GFLOP/img",
        "MFU",
        "first step s",
        "fill ms/img",
        "opt MiB",
        "EMA acc MiB",
    ):
        table.add_column(header, justify="left" if header == "scenario" else "right", no_wrap=True)
    for r in results:
        if r["status"] != "ok":  # the reason is printed under the table (see skipped_lines)
            table.add_row(r["scenario"], f"[yellow]{r['status']}[/]", *[""] * 9)
            continue
        table.add_row(
            r["scenario"],
            f"{r['images_per_s']:.3g}",
            f"{r['step_s_p50']:.3f}",
            f"{r['step_s_p95']:.3f}",
            f"{r['peak_memory_mb']:.0f}",
            f"{r['flops_per_image'] / 1e9:.4g}",
            _percent(r.get("mfu"))
            + (f" ±{_percent(r['matmul_spread'] / 2)}" if r.get("matmul_spread") else "")
            + (f" ({_percent(r['mfu_datasheet'])} of datasheet)" if r.get("mfu_datasheet") else ""),
            f"{r['time_to_first_step_s']:.1f}" if r.get("time_to_first_step_s") is not None else "",
            f"{r['cache_fill_ms_per_image']:.1f}" if r.get("cache_fill_ms_per_image") is not None else "",
            f"{r['optimizer_state_bytes'] / 2**20:.2f}",
            f"{r['ema_accelerator_bytes'] / 2**20:.2f}",
        )
    return table


def skipped_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per scenario that did not run: its name, status and reason."""
    return [f"{r['scenario']}: {r['status']}: {r.get('reason')}" for r in results if r["status"] != "ok"]


def comparison_table(changes: list[Change], old_name: str) -> Table:
    """Old vs new per scenario and figure, regressions in red."""
    table = Table(title=f"compared with {old_name}")
    for header in ("scenario", "figure", "old", "new", "ratio", "allowed +", "verdict"):
        table.add_column(header, justify="left" if header in ("scenario", "figure", "verdict") else "right")
    for c in changes:
        verdict = "[red]REGRESSION[/]" if c.regression else "ok"
        table.add_row(
            c.scenario, c.figure, f"{c.old:.4g}", f"{c.new:.4g}", f"{c.ratio:.2f}×", f"{c.allowed:.3g}", verdict
        )
    return table


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"
