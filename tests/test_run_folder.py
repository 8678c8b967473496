"""The run folder under hostile use: a lock two processes respect, resume that neither duplicates
metrics nor rewrites a finished run, restarts after a failed start, valid JSON, the umask,
plain log lines, OS errors as one line, and the dry run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adaptkit.cli import main
from adaptkit.testing.datasets import write_naruto
from adaptkit.training.cache_folder import default_latent_dir

from training_helpers import write_recipe

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_naruto(tmp_path / "naruto", rows=4).path


def recipe_for(tmp_path: Path, tiny_model_dir: Path, data: Path, **train) -> Path:
    train = {"steps": 4, **train}
    return write_recipe(tmp_path, tiny_model_dir, data, "lora", train=train, sample={"prompts": []})


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "adaptkit.cli", *args, "--no-progress"]
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


HOLD_LOCK = """
import sys, time
from adaptkit.training.run_lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire("a test")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_live_process_keeps_overwrite_and_resume_out(tmp_path: Path, tiny_model_dir: Path, data: Path, capsys):
    recipe = recipe_for(tmp_path, tiny_model_dir, data)
    assert main(["run", str(recipe), "--no-progress", "--set", "checkpoint.every=2"]) == 0
    run_dir = tmp_path / "runs" / "run"
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.name != ".lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        for flag in ("--overwrite", "--resume"):
            assert main(["run", str(recipe), "--no-progress", flag]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert f"another adaptkit process (pid {holder.pid} on" in err and f"{flag} refused" in err
        after = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.name != ".lock")
        assert after == before  # nothing deleted under the live process
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is gone with it, and the next run takes over with a message
    assert main(["run", str(recipe), "--no-progress", "--overwrite"]) == 0
    assert "taking over the lock left by pid" in capsys.readouterr().out


def test_two_real_runs_in_one_folder(tmp_path: Path, tiny_model_dir: Path, data: Path) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data, steps=400)
    first = subprocess.Popen(
        [sys.executable, "-m", "adaptkit.cli", "run", str(recipe), "--no-progress"],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    metrics = tmp_path / "runs" / "run" / "metrics.jsonl"
    try:
        import time

        deadline = time.monotonic() + 120
        while not (metrics.is_file() and metrics.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.05)
        second = cli("run", str(recipe), "--overwrite", cwd=tmp_path)
        assert second.returncode == 2 and "--overwrite refused" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on, its folder intact
        assert (tmp_path / "runs" / "run" / "recipe.toml").is_file()
    finally:
        first.kill()
        first.wait()


def test_resume_from_an_older_checkpoint_does_not_duplicate_metrics(tmp_path: Path, tiny_model_dir: Path, data: Path):
    recipe = recipe_for(tmp_path, tiny_model_dir, data, steps=6)
    first = cli("run", str(recipe), "--set", "checkpoint.every=2", "--set", "checkpoint.keep=5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "run"
    older = run_dir / "checkpoints" / "step-000002"
    (run_dir / "result.json").unlink()  # as if it stopped after step 6 was logged, before finishing
    resumed = cli("run", str(recipe), "--set", "checkpoint.every=2", "--resume", str(older), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "dropped 4 metrics.jsonl rows logged after it" in resumed.stdout
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path, tiny_model_dir: Path, data: Path, capsys) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data)
    assert main(["run", str(recipe), "--no-progress"]) == 0
    result = tmp_path / "runs" / "run" / "result.json"
    card = tmp_path / "runs" / "run" / "adapter" / "README.md"
    saved = result.read_text(), card.read_text()
    capsys.readouterr()
    assert main(["run", str(recipe), "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "the run already finished at step 4" in err and "nothing was changed" in err
    assert (result.read_text(), card.read_text()) == saved
    json.loads(saved[0], parse_constant=lambda name: pytest.fail(f"{name} in result.json"))


def test_a_start_that_stopped_before_its_first_checkpoint_can_start_again(
    tmp_path: Path, tiny_model_dir: Path, data: Path, capsys
) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data)
    run_dir = tmp_path / "runs" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.toml").write_text("# left by a start that died while caching\n")
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    assert main(["run", str(recipe), "--no-progress", "--resume"]) == 2  # nothing to resume: said before caching
    err = capsys.readouterr()
    assert "no complete checkpoint" in err.err and "latents reused from" not in err.out
    assert main(["run", str(recipe), "--no-progress"]) == 0  # no --overwrite needed: no work is lost
    assert "holds no checkpoint or result" in capsys.readouterr().out
    assert (run_dir / "result.json").is_file()


def test_json_is_valid_and_nan_is_null(tmp_path: Path) -> None:
    from adaptkit.run import Run, to_json

    assert to_json({"loss": float("nan"), "rows": [float("inf"), 1.5]}) == '{"loss": null, "rows": [null, 1.5]}'
    run = Run(recipe=None, recipe_path=tmp_path, run_dir=tmp_path)  # type: ignore[arg-type]
    run.log_metrics({"step": 1, "loss": float("nan")})
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "loss": None}


def test_saved_weights_follow_the_umask(tmp_path: Path, tiny_model_dir: Path, data: Path) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data)
    old = os.umask(0o022)
    try:
        cache = ["--set", f"data.cache_dir={tmp_path / 'cache'}"]
        assert main(["run", str(recipe), "--no-progress", "--set", "checkpoint.every=2", *cache]) == 0
        assert main(["export", str(tmp_path / "runs" / "run"), "--format", "kohya"]) == 0
    finally:
        os.umask(old)
    run_dir = tmp_path / "runs" / "run"
    cached = list((tmp_path / "cache").rglob("*.safetensors"))
    exported = list(run_dir.joinpath("exports").rglob("*.safetensors"))
    weights = [
        *run_dir.joinpath("adapter").rglob("*.safetensors"),
        *run_dir.joinpath("checkpoints").rglob("*.safetensors"),
        *exported,
        *cached,
    ]
    assert cached and exported and len(weights) >= 4
    for path in weights:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_no_progress_still_prints_the_loss_lines(tmp_path: Path, tiny_model_dir: Path, data: Path) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data)
    done = cli("run", str(recipe), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"] and "loss" in lines[0]


def test_a_read_only_output_folder_is_one_line(tmp_path: Path, tiny_model_dir: Path, data: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; a read-only bind is not available in a test: use a file as the parent
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        recipe = recipe_for(tmp_path, tiny_model_dir, data)
        done = cli("run", str(recipe), "--set", f"run.output_dir={blocker}", cwd=tmp_path)
    else:  # pragma: no cover - a normal user
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        recipe = recipe_for(tmp_path, tiny_model_dir, data)
        done = cli("run", str(recipe), "--set", f"run.output_dir={readonly}", cwd=tmp_path)
    assert done.returncode == 74, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot prepare the run folder" in lines[0]


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path: Path, tiny_model_dir: Path, data: Path, capsys) -> None:
    recipe = recipe_for(tmp_path, tiny_model_dir, data, steps=10)
    assert main(["run", str(recipe), "--dry-run", "--set", "train.batch_size=2"]) == 0
    out = capsys.readouterr().out
    assert "dataset: 4 examples" in out and "steps: 10 × 2 examples per step = 5.00 epochs" in out
    latents = f"latents (on disk in {default_latent_dir()}, encoded each as a batch first draws it)"
    assert f"cached: {latents}, text embeddings (in memory, before the first step)" in out
    assert not (tmp_path / "runs" / "run").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(recipe.read_text().replace(str(tiny_model_dir), str(tmp_path / "missing-model")))
    assert main(["validate", str(bad), "--deep"]) == 2
    assert "missing-model" in capsys.readouterr().err


def test_the_lock_is_released_after_a_run(tmp_path: Path) -> None:
    from adaptkit.training.run_lock import RunLock

    first = RunLock(tmp_path)
    first.acquire("run")
    first.release()
    second = RunLock(tmp_path)
    second.acquire("run")  # no error: released
    assert second.held
    second.release()
