"""One process at a time in a run folder: ``.lock``, held for the life of a run.

The lock is an exclusive ``fcntl.flock`` on ``<run_dir>/.lock``. The kernel drops it when the
holding process exits, however it exits, so a lock left by a dead process is no lock: the next
run takes it and says whose it was (the file records the holder's pid, host and command).
On NFS, Linux implements ``flock`` with POSIX byte-range locks (since 2.6.12), which the server
arbitrates across clients; on filesystems without locking (some FUSE mounts) ``flock`` fails
and the run says so and goes on unlocked. ``--overwrite`` keeps the lock file while it empties
the folder, so the lock is never released in between.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from adaptkit.errors import UserError

LOCK_FILE = ".lock"


class RunLocked(UserError):
    """Another live process holds the run folder."""


class RunLock:
    """The run folder's lock; :meth:`acquire` raises :class:`RunLocked` when a live process holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, action: str) -> None:
        """Take the lock for ``action`` (``run``, ``--resume``, ``--overwrite``) or raise one line."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock
            print(f"{self.path.parent}: no file locking on this platform; do not start two runs in this folder")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: another adaptkit process ({holder}) is training in this folder; "
                f"{action} refused until it stops (or use another run.name)"
            ) from None
        except OSError as exc:  # a filesystem without locks
            os.close(fd)
            print(f"{self.path.parent}: cannot lock the run folder ({exc.strerror}); going on without a lock")
            return
        previous = _read_holder(fd)
        if previous and previous.get("pid") != os.getpid():
            print(f"{self.path.parent}: taking over the lock left by {_describe(previous)}, which is no longer running")
        _write_holder(fd)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock and forget the holder (the file stays: it means nothing without the flock)."""
        if self._fd is None:
            return
        import fcntl

        os.ftruncate(self._fd, 0)  # a holder recorded in an unlocked file is one that died holding it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096).decode("utf-8", "replace")
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())


def _describe(holder: dict) -> str:
    if not holder:
        return "unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')}"


def live_holder(run_dir: Path) -> dict | None:
    """The process holding ``run_dir``'s lock (``{"pid", "host", "command"}``) when it is alive on this
    host, else None. Reads the file only (never takes the lock, so a run starting now is not refused);
    a holder left by a process that died holding it is no holder."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int) or pid <= 0 or data.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return data
    return data
