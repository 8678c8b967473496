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


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "adaptkit.cli", *args]
    try:
        return subprocess.run(
            command,
            cwd=folder,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired as stuck:  # say where it stopped, not only that it did
        said = "".join(
            part.decode() if isinstance(part, bytes) else part or "" for part in (stuck.stdout, stuck.stderr)
        )
        pytest.fail(f"torchrun {' '.join(args)} did not finish in 300 s; its output:\n{said[-4000:]}")


def _adapter_tensors(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted((run_dir / "adapter").rglob("*.safetensors"))
    assert files, run_dir
    return {f"{path.name}:{key}": value for path in files for key, value in load_file(str(path)).items()}


@needs_torchrun
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
    done = _torchrun(tmp_path, "run", str(recipe), "--no-progress")
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


@needs_torchrun
@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_processes_killed_after_a_checkpoint_resume_to_the_weights_of_an_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, accumulation: int
) -> None:
    """Both processes are SIGKILLed after step 3 (the checkpoint is step 2); the resumed run, with
    gradient accumulation through ``accelerator.accumulate``, ends bit-identical to a straight one."""
    import torch

    data = write_naruto(tmp_path / "naruto", rows=8).path
    results = {}
    for name in ("straight", "resumed"):
        folder = tmp_path / name
        folder.mkdir()
        recipe = write_recipe(
            folder,
            tiny_model_dir,
            data,
            "lora",
            train={"steps": 4, "log_every": 2, "gradient_accumulation": accumulation},
            checkpoint={"every": 2},
            sample={"prompts": []},
        )
        if name == "straight":
            done = _torchrun(folder, "run", str(recipe), "--no-progress")
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            killed = _torchrun(folder, "run", str(recipe), "--no-progress", env={"ADAPTKIT_FAULT": "kill:step-end:3"})
            assert killed.returncode != 0 and not (folder / "runs" / "run" / "result.json").exists()
            second = _torchrun(folder, "run", str(recipe), "--resume", "--no-progress")
            assert second.returncode == 0, second.stdout + second.stderr
            assert second.stdout.count("resuming from") == 1  # said once, by the main process
            assert "(step 2)" in second.stdout  # trained on from the checkpoint, not from scratch
        results[name] = _adapter_tensors(folder / "runs" / "run")
    assert results["straight"].keys() == results["resumed"].keys()
    for key, value in results["straight"].items():
        assert torch.equal(value, results["resumed"][key]), key
