"""Run one scenario through the real Trainer and measure it (meant for a fresh process each).

``python -m adaptkit.bench.measure REQUEST.json RESULT.json`` — the parent (:func:`run_in_subprocess`)
starts one per scenario, so peak memory never leaks from one scenario into the next.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from adaptkit.bench.flops import (
    PRECISION_DTYPES,
    count_flops,
    datasheet_flops_per_s,
    matmul_flops_per_s,
    mfu,
    tensor_bytes,
)
from adaptkit.bench.probe import TIMES_KEY
from adaptkit.bench.scenarios import Scenario

SYNTHETIC_IMAGES = 4


@dataclass(frozen=True)
class BenchConfig:
    """What every scenario of one bench run shares."""

    model: str = "testing:sd15-random"
    resolution: int = 512
    batch_size: int = 1
    steps: int = 5
    warmup: int = 2
    lora_rank: int = 4
    workdir: str = ""
    matmul_size: int | None = None


def write_synthetic_images(folder: Path, resolution: int, count: int = SYNTHETIC_IMAGES) -> Path:
    """``count`` gradient-and-noise PNGs with ``.txt`` captions at ``resolution`` px (an imagefolder)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, resolution, dtype=np.float32)
    for i in range(count):
        base = np.stack([np.add.outer(ramp, ramp * (c + i) / 4) / 2 for c in range(3)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 24, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(f"a colorful painting number {i}", encoding="utf-8")
    return folder


def scenario_recipe(scenario: Scenario, config: BenchConfig, images: Path) -> dict[str, Any]:
    """The recipe (as a dict) that trains ``scenario``: what a user would write for it."""
    method: dict[str, Any] = {"name": scenario.method}
    if scenario.method in ("lora", "loha"):
        method["options"] = {"rank": config.lora_rank}
    return {
        "run": {"name": scenario.name.replace("/", "_"), "output_dir": str(Path(config.workdir) / "runs")},
        "model": {"base": config.model},
        "data": {
            "adapter": "imagefolder",
            "options": {"source": str(images)},
            "resolution": config.resolution,
            "cache_latents": scenario.cache,
            "cache_text": scenario.cache,
            "cache_fill": "upfront",  # timed steps never encode
            "cache_dir": str(Path(config.workdir) / "latents" / scenario.name.replace("/", "_")),  # a cold fill
        },
        "method": method,
        "train": {
            "steps": config.warmup + config.steps,
            "batch_size": config.batch_size,
            "optimizer": scenario.optimizer,
            "mixed_precision": scenario.precision,
            "attention": scenario.attention,
            "gradient_checkpointing": scenario.checkpointing,
            "compile": scenario.compile,
            "log_every": 1,
        },
        "ema": {"enabled": scenario.ema != "none", "offload": scenario.ema == "cpu"},
        "plugins": {"modules": ["adaptkit.bench.probe"]},
    }


def measure_scenario(scenario: Scenario, config: BenchConfig, images: Path) -> dict[str, Any]:
    """Train ``scenario`` for warm-up + timed steps in this process; return its figures."""
    from adaptkit.recipe import parse_recipe
    from adaptkit.resolve import resolve_recipe
    from adaptkit.training.trainer import Trainer

    source = Path(config.workdir) / f"{scenario.name.replace('/', '_')}.toml"
    recipe = parse_recipe(scenario_recipe(scenario, config, images), str(source))
    trainer = Trainer(resolve_recipe(recipe, source), overwrite=True, show_progress=False)
    counted: dict[str, int] = {}
    dtype = PRECISION_DTYPES[scenario.precision]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the trainer's (accelerate's)
    before = matmul_samples(device, dtype, config.matmul_size)
    started = time.perf_counter()
    try:
        trainer.setup()
        step = trainer._optimizer_step

        def first_step_counted(index: int, batches: Any) -> torch.Tensor:
            if "flops" in counted:
                return step(index, batches)
            loss, counted["flops"] = count_flops(lambda: step(index, batches))
            return loss

        trainer._optimizer_step = first_step_counted  # the first (warm-up) step is counted, never timed
        trainer.train()
        device = trainer.accelerator.device
        times = trainer.run.state[TIMES_KEY]
        figures = step_figures(times, config.warmup, trainer.layout.examples_per_step)
        figures["time_to_first_step_s"] = times[1] - started if len(times) > 1 else None
        cache = trainer.latent_cache
        figures["cache_fill_ms_per_image"] = cache.ms_per_encoded_image() if cache is not None else None
        figures.update(
            peak_memory_mb=peak_memory_mb(device),
            flops_per_image=counted["flops"] / trainer.layout.examples_per_step,
            optimizer_state_bytes=tensor_bytes(_optimizer_state(trainer.optimizer)),
            trainable_params=sum(p.numel() for p in trainer.trainable),
            **ema_bytes(trainer),
        )
    finally:
        trainer.cleanup()
    rates = before + matmul_samples(device, dtype, config.matmul_size)  # before and after the timed steps
    figures["matmul_flops_per_s"] = statistics.median(rates)
    figures["matmul_spread"] = (max(rates) - min(rates)) / figures["matmul_flops_per_s"]
    figures["mfu"] = mfu(figures["flops_per_image"], figures["images_per_s"], figures["matmul_flops_per_s"])
    figures["datasheet_flops_per_s"] = datasheet_flops_per_s(device, scenario.precision)
    figures["mfu_datasheet"] = mfu(
        figures["flops_per_image"], figures["images_per_s"], figures["datasheet_flops_per_s"]
    )
    figures["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({_threads()})"
    return figures


def matmul_samples(device: torch.device, dtype: torch.dtype, size: int | None, count: int = 3) -> list[float]:
    """``count`` measurements of the device's matmul FLOP/s (each the best of 3), now."""
    return [matmul_flops_per_s(device, dtype, size) for _ in range(count)]


def step_figures(times: list[float], warmup: int, images_per_step: int) -> dict[str, float]:
    """Step time p50/p95 and images/s (from the median) over the steps after ``warmup``."""
    steps = [b - a for a, b in zip(times, times[1:], strict=False)][warmup:]
    if not steps:
        raise RuntimeError("no timed steps (steps must be at least 1)")
    p50 = statistics.median(steps)
    p95 = sorted(steps)[min(len(steps) - 1, round(0.95 * (len(steps) - 1)))]
    return {
        "step_s_p50": p50,
        "step_s_p95": p95,
        "images_per_s": images_per_step / p50,
        "timed_steps": len(steps),
        "step_times_s": steps,
    }


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated on a GPU; on CPU the peak RSS of this process (VmHWM), in MiB.

    VmHWM rather than ``ru_maxrss`` (:func:`adaptkit.training.telemetry.peak_memory_mb`, used where
    there is no ``/proc``): Linux carries the forking parent's peak into ``ru_maxrss`` across exec.
    """
    from adaptkit.training.telemetry import peak_memory_mb as rusage_peak

    status = Path("/proc/self/status")
    if device.type != "cuda" and status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return rusage_peak(device)


def ema_bytes(trainer: Any) -> dict[str, int]:
    """Bytes of the EMA shadow weights in all, and on an accelerator (0 with CPU offload or no EMA)."""
    if trainer.ema is None:
        return {"ema_bytes": 0, "ema_accelerator_bytes": 0}
    shadows = trainer.ema.model.shadow_params
    return {
        "ema_bytes": tensor_bytes(shadows),
        "ema_accelerator_bytes": tensor_bytes([p for p in shadows if p.device.type != "cpu"]),
    }


def _optimizer_state(optimizer: Any) -> Any:
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    return list(inner.state.values())


def _threads() -> str:
    return f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}"


def run_in_subprocess(scenario: Scenario, config: BenchConfig, images: Path, timeout: float | None = None) -> dict:
    """Measure ``scenario`` in a fresh Python process; a failure becomes ``status = "failed"`` with its reason."""
    workdir = Path(config.workdir)
    slug = scenario.name.replace("/", "_")
    request, result, log = (workdir / f"{slug}.{ext}" for ext in ("request.json", "result.json", "log"))
    request.write_text(json.dumps({"scenario": scenario.to_dict(), "config": asdict(config), "images": str(images)}))
    result.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "adaptkit.bench.measure", str(request), str(result)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {timeout:.0f} s (log: {log})"}
    if code != 0 or not result.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return {"status": "failed", "reason": (lines[-1] if lines else f"exit status {code}")[:300] + f" (log: {log})"}
    return {"status": "ok", **json.loads(result.read_text())}


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    figures = measure_scenario(
        Scenario(**request["scenario"]), BenchConfig(**request["config"]), Path(request["images"])
    )
    Path(argv[1]).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
