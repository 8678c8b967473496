"""The run queue: each run is a real ``adaptkit run`` process, started one at a time by default.

A process is started in its own session (``start_new_session=True``) with its output in a log file
(``<runs>/.adaptkit-ui/logs/``), never a pipe: stopping or killing the UI leaves it training. Stop
sends SIGINT, the same clean stop as Ctrl-C (finish the step, checkpoint, exit 130); resume is
``adaptkit run RUN/recipe.toml --resume``. A run the UI did not start (the CLI's, or one from before
the UI restarted) is stopped through the pid its run lock records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptkit.errors import UserError
from adaptkit.training.run_lock import live_holder
from adaptkit.ui.drafts import run_overrides, ui_dir

QUEUED, RUNNING, EXITED, CANCELLED = "queued", "running", "exited", "cancelled"
#: Lines of a job's log the run page shows.
LOG_TAIL = 30


@dataclass
class Job:
    """One queued or started ``adaptkit run``."""

    id: int
    run_name: str
    kind: str  # "new" or "resume"
    argv: list[str]
    log: Path
    state: str = QUEUED
    returncode: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log_tail(self, lines: int = LOG_TAIL) -> list[str]:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "run": self.run_name,
            "kind": self.kind,
            "state": self.state,
            "returncode": self.returncode,
            "pid": self.pid,
            "command": " ".join(["adaptkit", *self.argv]),
            "log": self.log_tail(),
        }


def run_argv(
    recipe: Path, runs_dir: Path, name: str, *, resume: bool = False, overwrite: bool = False, steps: int | None = None
) -> list[str]:
    """``adaptkit``'s arguments that train ``recipe`` as run ``name`` in ``runs_dir`` (or resume it there)."""
    argv = ["run", str(recipe)]
    for override in run_overrides(runs_dir, name) + ([f"train.steps={int(steps)}"] if steps else []):
        argv += ["--set", override]
    argv.append("--no-progress")
    if resume:
        argv.append("--resume")
    if overwrite:
        argv.append("--overwrite")
    return argv


class JobQueue:
    """Starts queued jobs while fewer than ``concurrency`` of them run; a thread per process reaps it."""

    def __init__(self, runs_dir: Path, concurrency: int = 1, python: str = sys.executable) -> None:
        self.runs_dir, self.concurrency, self.python = runs_dir, concurrency, python
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    def jobs(self, run_name: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs if run_name is None or j.run_name == run_name]

    def submit(self, run_name: str, argv: Sequence[str], kind: str) -> Job:
        """Queue ``adaptkit ARGV`` for run ``run_name``; refused while that run is queued, or training.

        A job whose process has released the run (a stopped run still exiting) does not refuse it: the
        new job waits for that process to end."""
        with self._lock:
            if any(j.run_name == run_name and j.state == QUEUED for j in self._jobs):
                raise UserError(f"{run_name}: already queued")
            if live_holder(self.runs_dir / run_name) is not None:
                raise UserError(f"{run_name}: a process is training in this run folder; stop it first")
            job_id = len(self._jobs) + 1
            log = ui_dir(self.runs_dir, "logs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{job_id}-{run_name}.log"
            job = Job(job_id, run_name, kind, list(argv), log)
            self._jobs.append(job)
        self._start_ready()
        return job

    def stop(self, run_name: str) -> str:
        """Cancel the run's queued job, or send SIGINT to the process training it; says which, in one line."""
        with self._lock:
            for job in self._jobs:
                if job.run_name == run_name and job.state == QUEUED:
                    job.state = CANCELLED
                    return f"{run_name}: taken off the queue"
        holder = live_holder(self.runs_dir / run_name)
        pid = holder.get("pid") if holder else None
        if pid is None:
            running = [j for j in self.jobs(run_name) if j.state == RUNNING]
            pid = running[0].pid if running else None
        if pid is None:
            raise UserError(f"{run_name}: not running")
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            raise UserError(f"{run_name}: not running (it has just exited)") from None
        return f"{run_name}: asked to stop (SIGINT to pid {pid}): it checkpoints and exits"

    def _start_ready(self) -> None:
        with self._lock:
            busy = {j.run_name for j in self._jobs if j.state == RUNNING}
            ready: list[Job] = []
            for job in self._jobs:
                if job.state == QUEUED and job.run_name not in busy and len(busy) < self.concurrency:
                    self._start(job)
                    if job.state == RUNNING:
                        busy.add(job.run_name)
                        ready.append(job)
        for job in ready:
            threading.Thread(target=self._reap, args=(job,), daemon=True, name=f"adaptkit-ui-job-{job.id}").start()

    def _start(self, job: Job) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with job.log.open("ab") as log:
            log.write(f"$ adaptkit {' '.join(job.argv)}\n".encode())
            log.flush()
            try:
                job.process = subprocess.Popen(
                    [self.python, "-m", "adaptkit", *job.argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session: a signal to the UI's group never reaches it
                    env=env,
                )
            except OSError as exc:
                log.write(f"error: cannot start {self.python} ({exc.strerror or exc})\n".encode())
                job.state, job.returncode = EXITED, 127
                return
        job.state = RUNNING

    def _reap(self, job: Job) -> None:
        assert job.process is not None
        code = job.process.wait()
        with self._lock:
            job.returncode, job.state = code, EXITED
        self._start_ready()
