"""Summarise an ``adaptkit bench --matrix --json`` report as two Markdown tables.

Rows: method / attention / optimizer / precision / EMA placement; columns: gradient checkpointing × caching.
The first table holds the median step time (ms), the second the peak memory (MiB); skipped
and failed scenarios are counted by status and reason underneath. With several reports, a later
report's scenario replaces the same scenario of an earlier one (to merge a partial rerun), except
that a failure never replaces a scenario that ran. Usage:

    python benchmarks/matrix_summary.py benchmarks/results/tiny-cpu-matrix.json [RERUN.json ...]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

COLUMNS = [(False, True), (False, False), (True, True), (True, False)]  # (checkpointing, cache)


def column_name(checkpointing: bool, cache: bool) -> str:
    """The table column of a scenario: gradient checkpointing × caching."""
    return f"{'gc' if checkpointing else 'nogc'}/{'cached' if cache else 'uncached'}"


def row_key(result: dict[str, Any]) -> str:
    """The table row of a scenario: method/attention/optimizer/precision/EMA placement."""
    return f"{result['method']}/{result['attention']}/{result['optimizer']}/{result['precision']}/ema-{result['ema']}"


def table(results: list[dict[str, Any]], figure: str, scale: float, digits: int) -> list[str]:
    """One Markdown table of ``figure × scale`` for every row key and column of ``results``."""
    cells: dict[str, dict[str, str]] = {}
    for r in results:
        value = r.get(figure)
        cells.setdefault(row_key(r), {})[column_name(r["checkpointing"], r["cache"])] = (
            f"{value * scale:.{digits}f}" if value is not None else "–"
        )
    header = ["method/attention/optimizer/precision/EMA", *(column_name(*c) for c in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(cells):
        lines.append("| " + " | ".join([f"`{key}`", *(cells[key].get(column_name(*c), "") for c in COLUMNS)]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+")
    args = parser.parse_args()
    by_scenario: dict[str, dict[str, Any]] = {}
    for path in args.reports:
        for result in json.loads(path.read_text(encoding="utf-8"))["results"]:
            earlier = by_scenario.get(result["scenario"])
            if not (earlier and earlier["status"] == "ok" and result["status"] == "failed"):
                by_scenario[result["scenario"]] = result
    results = list(by_scenario.values())
    ran = [r for r in results if r["status"] == "ok"]
    not_ran = Counter(  # a failure's reason ends with its own log path: leave it out to group them
        (r["status"], re.sub(r" \(log: [^)]*\)$", "", r.get("reason", ""))) for r in results if r["status"] != "ok"
    )
    print(f"{len(ran)} scenarios ran on {ran[0]['device'] if ran else '?'}; step time p50 (ms):\n")
    print("\n".join(table(ran, "step_s_p50", 1000, 0)))
    print("\npeak memory (MiB):\n")
    print("\n".join(table(ran, "peak_memory_mb", 1, 0)))
    print()
    for (status, reason), count in not_ran.most_common():
        print(f"- {count} {status}: {reason}")


if __name__ == "__main__":
    main()
