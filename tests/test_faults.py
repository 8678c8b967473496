"""Faults in real subprocesses (``ADAPTKIT_FAULT``, see adaptkit.training.faults): SIGKILL at six
points then resume, a full disk during a checkpoint write, and non-finite losses."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.testing.datasets import write_naruto
from adaptkit.training import faults
from adaptkit.training.checkpoint import is_complete, list_checkpoints, load_checkpoint
from adaptkit.training.faults import Fault, parse_faults
from adaptkit.training.optim import NonFiniteGuard

from training_helpers import run as run_recipe
from training_helpers import write_recipe

STEPS = 6
ADAPTER = "pytorch_lora_weights.safetensors"
SECTIONS = dict(
    train={"steps": STEPS, "lr_scheduler": "cosine", "log_every": 1},
    checkpoint={"every": 2, "keep": 1},
    sample={"prompts": []},
)


def adaptkit(*args: str, cwd: Path, fault: str = "") -> Finished:
    """``adaptkit ARGS`` in a forked child process with ``fault`` injected; its exit status and output.

    Forking (rather than starting a new interpreter) saves the import time of torch and
    diffusers; the child is still a separate process that really receives SIGKILL.
    """
    log = cwd / f".out-{os.getpid()}-{time.monotonic_ns()}"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            with log.open("w") as out:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                os.chdir(cwd)
                faults.FAULTS = faults.parse_faults(fault)
                sys.stdout = sys.stderr = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
                code = main([*args, "--no-progress"])
                sys.stdout.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    output = log.read_text()
    log.unlink()
    return Finished(os.waitstatus_to_exitcode(status), output)


class Finished(NamedTuple):
    returncode: int  # -9: killed by SIGKILL
    output: str  # stdout and stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path, Path]:
    """A folder with the dataset, and the recipe's uninterrupted run's final adapter."""
    folder = tmp_path_factory.mktemp("faults")
    data = write_naruto(folder / "naruto", rows=4).path
    recipe = write_recipe(folder, tiny_model_dir, data, "lora", name="straight", **SECTIONS)
    done = adaptkit("run", str(recipe), cwd=folder)
    assert done.returncode == 0, done.output
    return folder, data, folder / "runs" / "straight" / "adapter" / ADAPTER


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return bool(x) and x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_fault_spec_parsing() -> None:
    assert parse_faults("") == ()
    assert parse_faults("kill:step-end:3, nan:loss:2") == (Fault("kill", "step-end", 3), Fault("nan", "loss", 2))
    with pytest.raises(ValueError, match="KIND:POINT:STEP"):
        parse_faults("explode:step-end:3")


# (point, step): the newest complete checkpoint the resume must start from is noted beside each.
KILL_POINTS = [
    ("step-end", 3),  # between checkpoints: resume from step 2
    ("checkpoint-trainable", 4),  # weights written, nothing else: from step 2
    ("checkpoint-state", 4),  # optimizer state written, no manifest: from step 2
    ("checkpoint-manifest", 4),  # complete in its temporary folder, not renamed: from step 2
    ("checkpoint-renamed", 4),  # renamed, retention not yet run: from step 4
    ("checkpoint-retention", 4),  # while deleting step 2: from step 4
]


@pytest.mark.parametrize("point, step", KILL_POINTS, ids=[p for p, _ in KILL_POINTS])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(
    workdir: tuple[Path, Path, Path], tiny_model_dir: Path, point: str, step: int
) -> None:
    folder, data, reference = workdir
    name = f"kill-{point}"
    recipe = write_recipe(folder, tiny_model_dir, data, "lora", name=name, **SECTIONS)
    killed = adaptkit("run", str(recipe), cwd=folder, fault=f"kill:{point}:{step}")
    assert killed.returncode == -9, killed.output
    run_dir = folder / "runs" / name
    assert not (run_dir / "adapter" / ADAPTER).exists()

    resumed = adaptkit("run", str(recipe), "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.output
    expected_from = 4 if point in ("checkpoint-renamed", "checkpoint-retention") else 2
    assert f"(step {expected_from})" in resumed.output
    assert same_weights(reference, run_dir / "adapter" / ADAPTER)
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))


def test_disk_full_during_checkpoint_keeps_the_previous_one(
    workdir: tuple[Path, Path, Path], tiny_model_dir: Path
) -> None:
    folder, data, reference = workdir
    recipe = write_recipe(folder, tiny_model_dir, data, "lora", name="enospc", **SECTIONS)
    failed = adaptkit("run", str(recipe), cwd=folder, fault="enospc:checkpoint-state:4")
    assert failed.returncode == 74, failed.output
    assert "Traceback" not in failed.output
    errors = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert "step-000004" in errors[0] and "step-000002 is intact" in errors[0]

    checkpoints = folder / "runs" / "enospc" / "checkpoints"
    assert not list(checkpoints.glob(".tmp-*"))
    assert [p.name for p in list_checkpoints(checkpoints)] == ["step-000002"]
    assert is_complete(checkpoints / "step-000002") and load_checkpoint(checkpoints / "step-000002").step == 2

    resumed = adaptkit("run", str(recipe), "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.output
    assert same_weights(reference, folder / "runs" / "enospc" / "adapter" / ADAPTER)


# ---------------------------------------------------------------- non-finite loss


@pytest.mark.parametrize("fused", [True, False], ids=["fused-on-device", "foreach-host-check"])
def test_guard_skips_a_nonfinite_step_and_counts_it(fused: bool) -> None:
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.AdamW([param], lr=0.1, fused=fused, foreach=not fused)
    guard = NonFiniteGuard(optimizer, torch.device("cpu"))
    assert guard.on_device is fused
    param.grad = torch.full((4,), 0.5)
    assert guard.step(optimizer, torch.tensor(1.0)).item() == 0.0
    before, state = param.detach().clone(), {k: v.clone() for k, v in optimizer.state[param].items()}
    for _ in range(2):
        param.grad = torch.full((4,), float("nan"))
        assert guard.step(optimizer, torch.tensor(float("nan"))).item() == 1.0
    assert torch.equal(param, before)
    assert all(torch.equal(v, optimizer.state[param][k]) for k, v in state.items())
    assert guard.read() == (1.0, 2, 2)  # mean finite loss, skipped in all, longest run
    param.grad = torch.full((4,), 0.5)
    guard.step(optimizer, torch.tensor(3.0))
    assert guard.read() == (3.0, 2, 2) and guard.state_dict() == {"skipped": 2, "consecutive": 0}
    assert guard.read()[2] == 0  # the longest run is per read window


def test_fused_adamw_is_the_default_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    from adaptkit.builtins.optimizers import AdamW
    from adaptkit.recipe import TrainSection
    from adaptkit.training.optim import build_optimizer, skips_on_device

    optimizer = build_optimizer([torch.nn.Parameter(torch.ones(2))], TrainSection(), AdamW())
    assert optimizer.param_groups[0]["fused"] and skips_on_device(optimizer)


def test_nonfinite_steps_are_skipped_and_not_averaged_into_ema(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps 3 and 4 of 4 get a NaN loss: weights and EMA equal those of a 2-step run (constant lr)."""
    data = write_naruto(tmp_path / "naruto", rows=4).path
    sections = dict(ema={"enabled": True, "decay": 0.9}, sample={"prompts": []})
    two = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="two", train={"steps": 2}, **sections)
    trainer_two, _ = run_recipe(two)
    monkeypatch.setattr(faults, "FAULTS", parse_faults("nan:loss:2,nan:loss:3"))
    four = write_recipe(
        tmp_path, tiny_model_dir, data, "lora", name="four", train={"steps": 4, "max_nonfinite_steps": 0}, **sections
    )
    trainer, result = run_recipe(four)
    assert result.nonfinite_steps == 2
    assert [row["nonfinite_steps"] for row in read_metrics(tmp_path / "runs" / "four")] == [0, 0, 1, 2]
    for a, b in zip(trainer_two.trainable, trainer.trainable, strict=True):
        assert torch.isfinite(b).all() and torch.equal(a, b)
    shadows = trainer.ema.model.shadow_params
    assert any(not torch.equal(s, p) for s, p in zip(shadows, trainer.trainable))  # a real average
    for a, b in zip(trainer_two.ema.model.shadow_params, shadows, strict=True):
        assert torch.equal(a, b)
    assert same_weights(
        tmp_path / "runs" / "two" / "adapter" / ADAPTER, tmp_path / "runs" / "four" / "adapter" / ADAPTER
    )


def test_consecutive_nonfinite_steps_stop_the_run_keeping_the_last_good_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    data = write_naruto(tmp_path / "naruto", rows=4).path
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data, "lora", name="nan",
        train={"steps": 8, "log_every": 1, "max_nonfinite_steps": 2}, checkpoint={"every": 2}, sample={"prompts": []},
    )  # fmt: skip
    monkeypatch.setattr(faults, "FAULTS", parse_faults("nan:loss:3,nan:loss:4"))  # steps 4 and 5 of 8
    assert main(["run", str(recipe), "--no-progress"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 consecutive steps had a non-finite loss" in errors[0]
    assert "stopped at step 5" in errors[0] and "step-000004 is kept" in errors[0]
    run_dir = tmp_path / "runs" / "nan"
    assert not (run_dir / "adapter").exists()
    kept = load_checkpoint(run_dir / "checkpoints" / "step-000004")
    assert all(torch.isfinite(t).all() for t in kept.trainable.values())
    assert kept.state["nonfinite"] == {"skipped": 1, "consecutive": 1}
