"""The sweep folder, ``runs/<sweep>/``: the one place that names its files::

study.db  space.toml  report.html  front.png  best.toml
trial-000/ trial-001/ ...   (ordinary run folders: adaptkit eval, export, compare work on them)
logs/trial-NNN.log          (each trial's output)
locks/trial-NNN.lock        (held by the worker running that trial, and by its run)
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SweepDir:
    """Every file and folder of one sweep, by name."""

    root: Path

    @property
    def study_db(self) -> Path:
        return self.root / "study.db"

    @property
    def storage_url(self) -> str:
        """The default Optuna storage: SQLite in the sweep folder (shared by every worker on this machine)."""
        return f"sqlite:///{self.study_db.resolve()}"

    @property
    def space(self) -> Path:
        """A copy of the space file the sweep started with."""
        return self.root / "space.toml"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def front_png(self) -> Path:
        return self.root / "front.png"

    @property
    def best_recipe(self) -> Path:
        return self.root / "best.toml"

    def trial(self, name: str) -> Path:
        """A trial's run folder (``trial-NNN``)."""
        return self.root / name

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def lock(self, name: str) -> Path:
        return self.root / "locks" / f"{name}.lock"

    @property
    def study_lock(self) -> Path:
        """Held while a worker opens the study, so that two workers starting at once create it once."""
        return self.root / "locks" / "study.lock"


def trial_name(number: int) -> str:
    """The run folder name of Optuna trial ``number``."""
    return f"trial-{number:03d}"


class TrialLock:
    """An exclusive ``flock`` on a trial's lock file: held by the worker running the trial and,
    inherited, by its ``adaptkit run`` process, so it is free exactly when neither is alive
    (SIGKILL included: the kernel releases it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock (waiting for it with ``wait``); False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "TrialLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Whether a live process holds the trial lock at ``path``."""
    probe = TrialLock(path)
    if probe.acquire():
        probe.release()
        return False
    return True
