"""The Optuna study behind a sweep, and one worker's loop over it.

Optuna does the searching: TPE with the fidelity budget as a constraint (``Trial.set_constraint``), the
median pruner on the validation loss, the trial budget (``MaxTrialsCallback``) and the shared storage
(SQLite in the sweep folder by default, any RDB URL for several machines). What adaptkit adds is the
glue: a trial is an ordinary run, judged by its evaluation with the checkpoint-ranking rule, and a
trial whose worker died (its lock is free) is failed and queued again, to resume from its checkpoint.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.sweep.folder import SweepDir, TrialLock, is_held, trial_name
from adaptkit.sweep.space import SweepSpec, recipe_value
from adaptkit.sweep.trial import Judged, TrialFailed, TrialStopped, judge, train_and_evaluate

#: Optuna's heartbeat, the backstop for a trial that died before taking its lock (seconds).
HEARTBEAT_S, GRACE_S = 60, 180
#: How often a trial is run again after its worker died.
MAX_RETRIES = 2


@dataclass(frozen=True)
class Sweep:
    """One sweep: the recipe, its space, the folder and the storage every worker shares."""

    recipe: str
    spec: SweepSpec
    folder: SweepDir
    storage_url: str
    name: str

    def axes(self) -> tuple[list[Any], list[Any]]:
        """The style and fidelity axes (the space file's, else ``adaptkit eval``'s defaults)."""
        from adaptkit.evaluation.ranking import FIDELITY_AXES, STYLE_AXES, parse_axis

        s = self.spec.sweep
        return (
            [parse_axis(s.style_figure)] if s.style_figure else list(STYLE_AXES),
            [parse_axis(s.fidelity_figure)] if s.fidelity_figure else list(FIDELITY_AXES),
        )


def pruning_rule(spec: SweepSpec) -> str:
    """The pruning rule, as printed and recorded."""
    p = spec.sweep.pruning
    if p.signal == "none":
        return "no pruning"
    return (
        f"median pruner on val_loss: after {p.startup_trials} finished trials, from step {p.warmup_steps}, a trial "
        "whose validation loss is worse than the median of earlier trials at the same step is stopped"
    )


def open_study(sweep: Sweep) -> Any:
    """The sweep's study, created when it does not exist yet."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # adaptkit prints each trial's outcome itself
    sqlite = sweep.storage_url.startswith("sqlite:")
    storage = RDBStorage(
        sweep.storage_url,
        engine_kwargs={"connect_args": {"timeout": 120}} if sqlite else None,  # workers wait for each other's writes
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
    )
    s = sweep.spec.sweep
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.startup_trials)
    pruner = (
        optuna.pruners.NopPruner()
        if s.pruning.signal == "none"
        else optuna.pruners.MedianPruner(
            n_startup_trials=s.pruning.startup_trials, n_warmup_steps=s.pruning.warmup_steps
        )
    )
    return optuna.create_study(
        study_name=sweep.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )


def queue_again(study: Any, trial: Any) -> None:
    """Queue a failed ``trial`` again with its values and attributes (so its folder, to resume from),
    as Optuna's heartbeat does for a stale one, at most :data:`MAX_RETRIES` times."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)


def fail_abandoned(study: Any, sweep: Sweep) -> list[int]:
    """Fail every running trial whose worker and run are gone (its lock is free), and queue it again
    (it keeps its folder, so it resumes from its last checkpoint); returns their numbers."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        folder = trial.user_attrs.get("folder")
        if folder is None or is_held(sweep.folder.lock(folder)):
            continue  # still starting (the heartbeat covers it), or alive
        if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            queue_again(study, study._storage.get_trial(trial._trial_id))
            failed.append(trial.number)
    return failed


def requeue_interrupted(study: Any) -> list[int]:
    """Queue again every trial a Ctrl-C stopped (Optuna failed it) that is not queued yet; returns their numbers."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for trial in trials:
        if trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted") and trial.number not in retried:
            queue_again(study, trial)
            queued.append(trial.number)
    return queued


def enqueue_baseline(study: Any, sweep: Sweep, resolved: Any) -> str:
    """Queue the recipe's own values as the first trial (once); returns the line to print."""
    values = {key: recipe_value(resolved, key) for key in sweep.spec.space}
    outside = [f"{k} = {v!r}" for k, v in values.items() if not sweep.spec.space[k].contains(v)]
    if outside:
        return f"baseline: the recipe's {', '.join(outside)} is outside the space; every trial is searched"
    if study.trials:
        return ""
    study.enqueue_trial(values, user_attrs={"baseline": True}, skip_if_exists=True)
    return "baseline: trial-000 is the recipe's own values (" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"


def record(trial: Any, judged: Judged, tolerance: float, seconds: float) -> None:
    """Keep a finished trial's judgement on it (the report reads it back) and its fidelity budget as
    Optuna's constraint (feasible when ≤ 0)."""
    t = judged.trade_off
    attrs = {
        "style_gain": t.style_gain,
        "style_gain_ci": list(t.style_gain_ci),
        "fidelity_loss": t.fidelity_loss,
        "fidelity_loss_ci": list(t.fidelity_loss_ci),
        "base_fidelity": t.base_fidelity,
        "style_figure": t.style_figure,
        "fidelity_figure": t.fidelity_figure,
        "adapter_scale": judged.scale,
        "seconds": seconds,
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    trial.set_constraint("fidelity_budget", t.fidelity_loss - tolerance * abs(t.base_fidelity))


class Objective:
    """Optuna's objective: one trial = one run, judged by its evaluation (the value is its style gain
    at its best adapter strength; the fidelity budget is the constraint)."""

    def __init__(self, sweep: Sweep, say: Any = print) -> None:
        self.sweep, self.say = sweep, say
        self.tolerance = sweep.spec.sweep.tolerance

    def __call__(self, trial: Any) -> float:
        import optuna

        name = trial.user_attrs.get("folder") or trial_name(trial.number)
        lock = TrialLock(self.sweep.folder.lock(name))
        if not lock.acquire():
            raise TrialFailed(f"{name}: another worker is running it")
        with lock:
            trial.set_user_attr("folder", name)
            trial.set_user_attr("interrupted", False)
            trial.set_user_attr("worker", os.getpid())
            values = {key: dim.suggest(trial, key) for key, dim in self.sweep.spec.space.items()}
            shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            self.say(f"{name}: {shown}")
            started = time.monotonic()
            assert lock.fd is not None
            try:
                train_and_evaluate(
                    self.sweep.folder,
                    name,
                    self.sweep.recipe,
                    self.sweep.spec.trial_values(values),
                    lock.fd,
                    self._pruning(trial),
                )
            except TrialStopped as stopped:
                trial.set_user_attr("pruned_at", stopped.step)
                self.say(f"{name}: pruned at step {stopped.step} ({time.monotonic() - started:.0f} s)")
                raise optuna.TrialPruned() from stopped
            except TrialFailed as failed:
                self.say(f"{name}: failed: {failed}")
                raise
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)  # Optuna fails it; the next start queues it again
                raise
            judged = judge(self.sweep.folder.trial(name), self.tolerance, *self.sweep.axes())
            record(trial, judged, self.tolerance, time.monotonic() - started)
            t = judged.trade_off
            within = "within" if t.within(self.tolerance) else "outside"
            self.say(
                f"{name}: style gain {t.style_gain:+.3g}, fidelity loss {t.fidelity_loss:+.3g} ({within} the budget) "
                f"at strength {judged.scale:g} ({time.monotonic() - started:.0f} s)"
            )
            return t.style_gain

    def _pruning(self, trial: Any) -> Any:
        if self.sweep.spec.sweep.pruning.signal == "none":
            return None

        def should_stop(step: int, value: float) -> bool:
            trial.report(value, step)
            return bool(trial.should_prune())

        return should_stop


def work(sweep: Sweep, resolved: Any, after_trial: Any = None, say: Any = print) -> Any:
    """One worker: join the study, fail abandoned trials, queue the baseline, then run trials until the
    study has ``trials`` finished ones or ``minutes`` have passed; returns the study."""
    sweep.folder.root.mkdir(parents=True, exist_ok=True)
    with quiet_optuna_warnings():
        with TrialLock(sweep.folder.study_lock) as opening:
            opening.acquire(wait=True)
            study = open_study(sweep)
        _prepare(study, sweep, resolved, say)
        _optimize(study, sweep, after_trial, say)
    return study


def _prepare(study: Any, sweep: Sweep, resolved: Any, say: Any) -> None:
    """Record the rules in the study, queue again what a dead worker or a Ctrl-C left, and the baseline."""
    from adaptkit.evaluation.ranking import rule_text

    study.set_user_attr("rule", rule_text(sweep.spec.sweep.tolerance))
    study.set_user_attr("pruning", pruning_rule(sweep.spec))
    study.set_user_attr("recipe", sweep.recipe)
    for number in fail_abandoned(study, sweep):
        say(f"{trial_name(number)}: its worker died; queued again (it resumes from its last checkpoint)")
    for number in requeue_interrupted(study):
        say(f"{trial_name(number)}: was interrupted; queued again (it resumes from its last checkpoint)")
    if sweep.spec.sweep.baseline:
        line = enqueue_baseline(study, sweep, resolved)
        if line:
            say(line)


def _optimize(study: Any, sweep: Sweep, after_trial: Any, say: Any) -> None:
    """Run trials until the budget is spent (or say it already is)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    s = sweep.spec.sweep
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done >= s.trials:
        say(f"sweep {sweep.name}: already has {done} finished trials (budget {s.trials})")
        return
    callbacks: list[Any] = [MaxTrialsCallback(s.trials, states=finished)]
    if after_trial is not None:
        callbacks.append(after_trial)
    study.optimize(
        Objective(sweep, say),
        n_trials=s.trials - done + MAX_RETRIES,  # failures count too: a broken recipe cannot loop forever
        timeout=s.minutes * 60,
        callbacks=callbacks,
        catch=(TrialFailed,),
        gc_after_trial=False,
    )


@contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Optuna's warnings about its own experimental features (the heartbeat, the retry callback) and about
    importances over a few trials are not the user's business."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*importances", category=UserWarning)
        yield


def sweep_of(recipe: str, spec: SweepSpec, resolved: Any, name: str | None, storage: str | None) -> Sweep:
    """The sweep a command names: ``runs/<name>/`` beside the recipe's runs (default name ``<recipe>-sweep``)."""
    chosen = name or spec.sweep.name or f"{Path(resolved.path).stem}-sweep"
    folder = SweepDir(Path(resolved.recipe.run.output_dir) / chosen)
    return Sweep(recipe, spec, folder, storage or folder.storage_url, chosen)


def finished_trials(study: Any) -> Sequence[Any]:
    """The study's complete trials that carry a judgement."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "style_gain" in t.user_attrs]
