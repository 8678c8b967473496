"""``adaptkit sweep``: the space file, the choice rule, and real sweeps on the tiny model (trials are
real ``adaptkit run`` processes): a sweep, its ``best.toml`` rerun, a worker killed by SIGKILL and
restarted, and two workers sharing one study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptkit.cli import main
from adaptkit.errors import UserError
from adaptkit.evaluation.ranking import TradeOff

RECIPE = """
[run]
name = "tiny"
[model]
base = "testing:tiny-sd"
[data]
adapter = "embedded-styles"
resolution = 32
[data.options]
style = "pop"
count = 8
[method]
name = "lora"
[method.options]
rank = 4
alpha = 4
[train]
steps = {steps}
batch_size = 4
learning_rate = 1e-3
log_every = 5
seed = 0
[checkpoint]
every = 5
keep = 1
[sample]
sampler = "dpm-solver"
steps = 4
guidance = 3.0
prompts = []
[eval]
metrics = ["embedded_probes"]
prompts = 2
"""

SPACE = """
[sweep]
trials = {trials}
minutes = 20
startup_trials = 1
{extra}
[sweep.pruning]
signal = "none"

[space]
"train.learning_rate" = {{ low = 1e-4, high = 1e-2, log = true }}
"method.options.rank" = {{ choices = [4, 8] }}
"""


def write_sweep(folder: Path, trials: int, steps: int = 10, extra: str = "") -> tuple[Path, Path]:
    recipe = folder / "tiny.toml"
    recipe.write_text(RECIPE.format(steps=steps))
    space = folder / "space.toml"
    space.write_text(SPACE.format(trials=trials, extra=extra))
    return recipe, space


def sweep_command(recipe: Path, space: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "adaptkit.cli", "sweep", str(recipe), "--space", str(space), *more]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # every trial is a process of its own on the shared cores
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def study_trials(folder: Path, name: str = "tiny-sweep") -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}").get_trials()


# --------------------------------------------------------------------------- the space file


def test_space_file_errors_name_the_file_and_key(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, space = write_sweep(in_tmp, trials=2)
    space.write_text(
        """
[sweep]
trails = 3
[space]
"train.learning_rate" = { low = 1e-2, high = 1e-4 }
"method.options.rank" = { choices = [4], low = 1 }
"train.lerning_rate" = { choices = [1e-3] }
"""
    )
    assert main(["sweep", str(recipe), "--space", str(space)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("sweep.trails: unknown key" in line for line in lines)
    assert any("space.train.learning_rate: low 0.01 is above high 0.0001" in line for line in lines)
    assert any("space.method.options.rank: give choices or low/high, not both" in line for line in lines)
    assert all(line.startswith(f"error: {space}") for line in lines)


def test_space_keys_must_be_recipe_keys_taking_the_values(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, space = write_sweep(in_tmp, trials=2)
    space.write_text(
        """
[sweep.pruning]
signal = "val_loss"
[space]
"train.lerning_rate" = { choices = [1e-3] }
"method.options.rank" = { low = 0, high = 4 }
"""
    )
    assert main(["sweep", str(recipe), "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert "[space] train.lerning_rate = 0.001:" in err and "train.lerning_rate: unknown key" in err
    assert "[space] method.options.rank = 0:" in err
    assert 'needs a validation loss: set "validation.every"' in err
    assert not (in_tmp / "runs" / "tiny-sweep").exists()  # nothing started


SPACES = sorted((Path(__file__).parent.parent / "recipes").glob("*-space.toml"))


@pytest.mark.parametrize("space", SPACES, ids=[p.name for p in SPACES])
def test_shipped_space_files_fit_their_recipes(space: Path) -> None:
    from adaptkit.sweep.space import check_against_recipe, load_space

    command = space.read_text().splitlines()[0]
    assert command == f"# adaptkit sweep recipes/{space.stem.removesuffix('-space')}.toml --space recipes/{space.name}"
    recipe = Path(__file__).parent.parent / command.split()[3]
    resolved = check_against_recipe(load_space(space), recipe, space)
    assert resolved.recipe.validation.every > 0


def test_the_space_file_reference_is_current() -> None:
    from adaptkit.sweep.docs import sweep_reference

    reference = Path(__file__).parent.parent / "docs" / "sweep.md"
    assert reference.read_text() == sweep_reference(), "run: python -m adaptkit.sweep.docs > docs/sweep.md"


def test_dimensions_suggest_and_contain_their_values() -> None:
    import optuna

    from adaptkit.sweep.space import Dimension

    steps = Dimension.model_validate({"low": 100, "high": 300, "step": 50})
    rate = Dimension.model_validate({"low": 1e-4, "high": 1e-2, "log": True})
    rank = Dimension.model_validate({"choices": [8, 16]})
    assert steps.integer and not rate.integer
    assert steps.contains(200) and not steps.contains(225) and not steps.contains(350)
    assert rate.contains(5e-4) and not rate.contains(0.5) and rank.contains(16) and not rank.contains(4)
    fixed = optuna.trial.FixedTrial({"steps": 250, "rate": 2e-3, "rank": 8})
    assert (steps.suggest(fixed, "steps"), rate.suggest(fixed, "rate"), rank.suggest(fixed, "rank")) == (250, 2e-3, 8)
    with pytest.raises(ValueError, match="log range needs low > 0"):
        Dimension.model_validate({"low": 0.0, "high": 1.0, "log": True})


def test_pareto_front_and_the_chosen_trial() -> None:
    from adaptkit.evaluation.ranking import best
    from adaptkit.sweep.report import Placed, pareto_front

    def placed(label: str, gain: float, loss: float) -> Placed:
        return Placed(None, TradeOff(label, gain, loss, 1.0, "s", "f"))

    trials = [placed("a", 0.9, 0.10), placed("b", 0.8, 0.02), placed("c", 0.5, 0.02), placed("d", 0.3, 0.0)]
    assert [p.trade_off.label for p in pareto_front(trials)] == ["d", "b", "a"]  # c is beaten by b
    assert best([p.trade_off for p in trials], 0.05).label == "b"  # a gains more but loses 10% > 5%


def _sweep_on(folder: Path):
    from adaptkit.sweep.folder import SweepDir
    from adaptkit.sweep.space import SweepSpec
    from adaptkit.sweep.study import Sweep, open_study

    spec = SweepSpec.model_validate({"space": {"train.learning_rate": {"low": 1e-4, "high": 1e-2}}})
    sweep = Sweep("tiny.toml", spec, SweepDir(folder), SweepDir(folder).storage_url, "s")
    folder.mkdir(parents=True, exist_ok=True)
    return sweep, open_study(sweep)


def test_a_trial_whose_worker_died_is_failed_and_queued_again_with_its_folder(tmp_path: Path) -> None:
    from adaptkit.sweep.folder import TrialLock
    from adaptkit.sweep.study import fail_abandoned

    sweep, study = _sweep_on(tmp_path / "sweep")
    alive, dead = study.ask(), study.ask()
    for trial, name in ((alive, "trial-000"), (dead, "trial-001")):
        trial.suggest_float("train.learning_rate", 1e-4, 1e-2)
        trial.set_user_attr("folder", name)
    starting = study.ask()  # no folder yet: left to Optuna's heartbeat
    with TrialLock(sweep.folder.lock("trial-000")) as lock:
        assert lock.acquire()
        assert fail_abandoned(study, sweep) == [dead.number]
        assert fail_abandoned(study, sweep) == []  # once
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {alive.number: "RUNNING", dead.number: "FAIL", starting.number: "RUNNING", 3: "WAITING"}
    retry = study.get_trials()[3]
    assert retry.user_attrs["folder"] == "trial-001" and retry.params == study.get_trials()[dead.number].params


def test_a_trial_folder_is_reused_only_with_the_trial_values(tmp_path: Path) -> None:
    from adaptkit.recipe.dump import dump_toml
    from adaptkit.sweep.trial import run_command, trained_with

    folder = tmp_path / "trial-000"
    values = {"train.learning_rate": 5e-4, "method.options.rank": 32, "eval.adapter_scales": [0.75, 1.0]}
    assert not trained_with(folder, values)  # nothing there yet
    folder.mkdir()
    recipe = {
        "train": {"learning_rate": 5e-4},
        "method": {"options": {"rank": 32}},
        "eval": {"adapter_scales": [0.75, 1.0]},
    }
    (folder / "recipe.toml").write_text(dump_toml(recipe))
    assert trained_with(folder, values)
    assert not trained_with(folder, {**values, "method.options.rank": 16})  # another study's trial-000
    assert not trained_with(folder, {**values, "train.steps": 100})
    assert run_command("r.toml", values, folder)[-1] == "--overwrite"  # no complete checkpoint to resume


def test_a_trial_stopped_by_ctrl_c_is_queued_again_once(tmp_path: Path) -> None:
    import optuna

    from adaptkit.sweep.study import requeue_interrupted

    _, study = _sweep_on(tmp_path / "sweep")
    distributions = {"train.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2)}
    stopped = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        params={"train.learning_rate": 1e-3},
        distributions=distributions,
        user_attrs={"folder": "trial-000", "interrupted": True},
    )
    study.add_trial(stopped)
    assert requeue_interrupted(study) == [0]
    assert requeue_interrupted(study) == []  # already queued
    waiting = study.get_trials()[1]
    assert waiting.state.name == "WAITING" and waiting.user_attrs["folder"] == "trial-000"


# --------------------------------------------------------------------------- real sweeps


def test_sweep_chooses_a_trial_and_best_toml_reruns_to_its_figures(in_tmp: Path) -> None:
    recipe, space = write_sweep(in_tmp, trials=2, extra="adapter_scales = [0.5, 1.0]")
    done = subprocess.run(sweep_command(recipe, space), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = in_tmp / "runs" / "tiny-sweep"
    assert "baseline: trial-000 is the recipe's own values" in done.stdout
    trials = study_trials(folder)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    import optuna

    recorded = optuna.load_study(study_name="tiny-sweep", storage=f"sqlite:///{folder / 'study.db'}").user_attrs
    assert recorded["pruning"] == "no pruning" and recorded["rule"].startswith("best = highest style gain")
    assert trials[0].params == {"train.learning_rate": 1e-3, "method.options.rank": 4}  # the recipe's own
    for t in trials:
        scales = json.loads((folder / t.user_attrs["folder"] / "eval" / "scales.json").read_text())
        assert [s["scale"] for s in scales["scales"]] == [0.5, 1.0]
        assert t.user_attrs["adapter_scale"] in (0.5, 1.0)
    report = (folder / "report.html").read_text()
    assert (
        "Chosen trial" in report and "Style gain against fidelity loss" in report and (folder / "front.png").is_file()
    )
    chosen_line = next(line for line in done.stdout.splitlines() if line.startswith("chosen: "))
    chosen = chosen_line.split()[1]
    best = folder / "best.toml"
    assert best.read_text().startswith(f"# adaptkit run {Path('runs') / 'tiny-sweep' / 'best.toml'}")

    rerun = subprocess.run(
        [sys.executable, "-m", "adaptkit.cli", "run", str(best), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = in_tmp / "runs" / "tiny-sweep-best"
    trial_dir = folder / chosen
    import torch
    from safetensors.torch import load_file

    weights = "adapter/pytorch_lora_weights.safetensors"
    trained, retrained = load_file(trial_dir / weights), load_file(again / weights)
    assert trained.keys() == retrained.keys() and all(torch.equal(trained[k], retrained[k]) for k in trained)
    chosen_trial = next(t for t in trials if t.user_attrs["folder"] == chosen)
    scale = chosen_trial.user_attrs["adapter_scale"]
    headline = json.loads((again / "eval" / "metrics.json").read_text())
    assert headline["settings"]["adapter_scale"] == scale
    scored = json.loads((trial_dir / "eval" / "scales.json").read_text())["scales"]
    at_scale = next(s["figures"] for s in scored if s["scale"] == scale)
    assert headline["figures"] == at_scale  # same seeds, same numbers


def _wait_for(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def test_sweep_killed_by_sigkill_resumes_and_never_reruns_a_finished_trial(in_tmp: Path) -> None:
    from adaptkit.sweep.folder import is_held
    from adaptkit.training.checkpoint import is_complete, list_checkpoints

    recipe, space = write_sweep(in_tmp, trials=2, steps=80)
    folder = in_tmp / "runs" / "tiny-sweep"
    worker = subprocess.Popen(sweep_command(recipe, space), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = folder / "trial-000" / "checkpoints"
    _wait_for(lambda: any(is_complete(p) for p in list_checkpoints(checkpoints)) or worker.poll() is not None)
    assert worker.poll() is None, worker.communicate()[0]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # the run got SIGINT when its worker died: it checkpoints and stops, then releases the trial's lock
    _wait_for(lambda: not is_held(folder / "locks" / "trial-000.lock"), 120)
    assert [t.state.name for t in study_trials(folder)] == ["RUNNING"]

    restarted = subprocess.run(sweep_command(recipe, space), capture_output=True, text=True, timeout=900)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "trial-000: its worker died; queued again" in restarted.stdout
    trials = study_trials(folder)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["folder"] == "trial-000" and trials[1].params == trials[0].params
    log = (folder / "logs" / "trial-000.log").read_text()
    assert "resum" in log.lower()  # the retried trial continued from its checkpoint

    third = subprocess.run(sweep_command(recipe, space), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "already has 2 finished trials" in third.stdout
    assert len(study_trials(folder)) == 3  # nothing ran again


def test_two_workers_share_one_study(in_tmp: Path) -> None:
    recipe, space = write_sweep(in_tmp, trials=2)
    done = subprocess.run(sweep_command(recipe, space, "--workers", "2"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = in_tmp / "runs" / "tiny-sweep"
    trials = study_trials(folder)
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) >= 2 and all(t.state.name != "RUNNING" for t in trials)
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers ran trials
    folders = [t.user_attrs["folder"] for t in finished]
    assert len(set(folders)) == len(folders)
    for name in folders:
        assert (folder / name / "eval" / "metrics.json").is_file()
    assert (folder / "logs" / "worker-1.log").is_file()


def test_a_sweep_refuses_a_changed_space(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptkit.sweep.folder import SweepDir
    from adaptkit.sweep.workers import keep_space

    _, space = write_sweep(in_tmp, trials=2)
    folder = SweepDir(in_tmp / "runs" / "tiny-sweep")
    keep_space(folder, space)
    space.write_text(space.read_text().replace("[4, 8]", "[4, 16]"))
    with pytest.raises(UserError, match="differs from the space sweep"):
        keep_space(folder, space)
    os.remove(folder.space)
    keep_space(folder, space)  # a restored (here: removed) copy lets it continue
