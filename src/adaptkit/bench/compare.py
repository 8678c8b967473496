"""``--compare OLD.json``: which scenarios got slower or bigger than noise allows.

Rule: a scenario regresses in step time when ``new p50 − old p50 > max(5 % of old p50, 3 × MAD)``,
MAD being the larger median absolute deviation of the two runs' timed steps; in peak memory when it
grew by more than 5 %. Scenarios missing from either run, or not ``ok`` in both, are not compared.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError

RELATIVE_NOISE = 0.05
MAD_FACTOR = 3.0


@dataclass(frozen=True)
class Change:
    """One scenario's figure, old and new, and whether it is a regression."""

    scenario: str
    figure: str
    old: float
    new: float
    allowed: float
    regression: bool

    @property
    def ratio(self) -> float:
        return self.new / self.old if self.old else float("inf")


def load_report(path: str | Path) -> dict[str, Any]:
    """A bench JSON report; UserError naming the file when it is missing or not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--compare: no such file: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--compare: {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UserError(f"--compare: {path} is not an adaptkit bench report (no 'results' list)")
    return data


def mad(values: list[float]) -> float:
    """Median absolute deviation (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return statistics.median(abs(v - middle) for v in values)


def compare_reports(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Step-time and peak-memory changes of the scenarios ``ok`` in both reports."""
    before = {r["scenario"]: r for r in old["results"] if r.get("status") == "ok"}
    changes: list[Change] = []
    for result in new["results"]:
        previous = before.get(result["scenario"])
        if previous is None or result.get("status") != "ok":
            continue
        old_p50, new_p50 = previous["step_s_p50"], result["step_s_p50"]
        noise = max(mad(previous.get("step_times_s", [])), mad(result.get("step_times_s", [])))
        allowed = max(RELATIVE_NOISE * old_p50, MAD_FACTOR * noise)
        changes.append(Change(result["scenario"], "step_s_p50", old_p50, new_p50, allowed, new_p50 - old_p50 > allowed))
        old_mem, new_mem = previous["peak_memory_mb"], result["peak_memory_mb"]
        allowed_mem = RELATIVE_NOISE * old_mem
        changes.append(
            Change(result["scenario"], "peak_memory_mb", old_mem, new_mem, allowed_mem, new_mem - old_mem > allowed_mem)
        )
    return changes
