"""Two processes on the CPU (torchrun + gloo): data sharded, weights in sync, one writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adaptkit.testing.datasets import write_naruto

from training_helpers import write_recipe

PROBE = """
import json
from pathlib import Path

import adaptkit

LOG = Path(__file__).with_suffix(".log")


@adaptkit.hookimpl
def on_step_end(run, step, logs):
    state = run.trainer_state()
    with LOG.open("a") as handle:
        handle.write(json.dumps({
            "rank": run.accelerator.process_index,
            "processes": run.accelerator.num_processes,
            "distributed": str(run.accelerator.distributed_type),
            "step": step,
            "checksum": float(sum(t.double().sum() for t in state.values())),
        }) + "\\n")
"""


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed"
)
def test_two_processes_stay_in_sync_and_only_the_main_one_writes(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    data = write_naruto(tmp_path / "naruto", rows=8).path
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data,
        "lora",
        train={"steps": 4, "log_every": 2},
        checkpoint={"every": 2},
        sample={"prompts": []},
        plugins={"modules": ["probe.py"]},
    )
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "adaptkit.cli",
            "run",
            str(recipe),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (tmp_path / "probe.log").read_text().splitlines()]
    assert {r["rank"] for r in rows} == {0, 1} and all(r["processes"] == 2 for r in rows)
    assert all("MULTI_CPU" in r["distributed"] for r in rows)
    for step in (2, 4):
        sums = {r["rank"]: r["checksum"] for r in rows if r["step"] == step}
        assert sums[0] == sums[1]  # DDP keeps the replicas identical
    run_dir = tmp_path / "runs" / "run"
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]  # written once, by the main process
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert done.stdout.count("run run") == 1  # one summary
