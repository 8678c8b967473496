"""Run a list of scenarios, each in a fresh process, and gather one report."""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from adaptkit import __version__
from adaptkit.bench.measure import BenchConfig, run_in_subprocess, write_synthetic_images
from adaptkit.bench.scenarios import Scenario, skip_reason


def device_type() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_bench(
    scenarios: list[Scenario],
    config: BenchConfig,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measure every runnable scenario (skipped ones carry their reason); return the whole report."""
    device = device_type()
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="adaptkit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = replace(config, workdir=str(workdir))
    images = write_synthetic_images(workdir / "images", config.resolution)
    results = []
    for scenario in scenarios:
        reason = skip_reason(scenario, device)
        figures = {"status": "skipped", "reason": reason} if reason else run_in_subprocess(scenario, config, images)
        result = {"scenario": scenario.name, **scenario.to_dict(), **figures}
        results.append(result)
        if on_result is not None:
            on_result(result)
    return {
        "adaptkit_version": __version__,
        "torch_version": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "device_type": device,
        "config": asdict(config),
        "results": results,
    }
