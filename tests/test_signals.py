"""SIGINT/SIGTERM in a real subprocess: checkpoint, the resume command, exit 130/143, exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from adaptkit.testing.datasets import write_naruto

from training_helpers import write_recipe

STEPS = 40


def adaptkit(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "adaptkit.cli", *args, "--no-progress"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_step(metrics: Path, step: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= step:
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("the run did not reach the step in time")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_resume_is_exact(tmp_path: Path, tiny_model_dir: Path, sig: int, code: int) -> None:
    data = write_naruto(tmp_path / "naruto", rows=4).path
    sections = dict(train={"steps": STEPS, "lr_scheduler": "cosine"}, sample={"prompts": []})
    straight = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="straight", **sections)
    stopped = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="stopped", **sections)

    process = adaptkit("run", str(stopped), cwd=tmp_path)
    wait_for_step(tmp_path / "runs" / "stopped" / "metrics.jsonl", 3, process)
    process.send_signal(sig)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == code, out
    assert "Traceback" not in out
    resume_line = next(line for line in out.splitlines() if line.startswith("resume with: "))
    assert resume_line == f"resume with: adaptkit run {stopped} --resume"
    checkpoints = sorted((tmp_path / "runs" / "stopped" / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and 3 <= int(checkpoints[0].name.split("-")[1]) < STEPS

    resumed = adaptkit("run", str(stopped), "--resume", cwd=tmp_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    full = adaptkit("run", str(straight), cwd=tmp_path)
    out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out

    name = "pytorch_lora_weights.safetensors"
    a = load_file(str(tmp_path / "runs" / "straight" / "adapter" / name))
    b = load_file(str(tmp_path / "runs" / "stopped" / "adapter" / name))
    assert a.keys() == b.keys() and a
    assert all((a[k] == b[k]).all() for k in a)
