"""Which launcher started this process (``adaptkit run`` alone, ``torchrun``, ``accelerate launch``,
``deepspeed``), with how many processes on how many nodes, and the launcher's own command line, so
that the resume hint repeats the command the user typed.

torchrun and ``accelerate launch`` set ``WORLD_SIZE``/``LOCAL_WORLD_SIZE`` and start the training
processes as their children; the parent's command line is read from ``/proc`` (Linux; elsewhere the
hint names the launcher without its options).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Launchers recognised in the parent's command line: (a word in it, the launcher's name).
LAUNCHERS = (("accelerate", "accelerate launch"), ("deepspeed", "deepspeed"), ("torchrun", "torchrun"),
             ("torch.distributed.run", "torchrun"))  # fmt: skip
#: Options of ``adaptkit run`` that a resume replaces.
_RESTART_OPTIONS = ("--resume", "--overwrite")


@dataclass(frozen=True)
class Launch:
    """How this process was started."""

    launcher: str
    processes: int
    nodes: int
    #: The launcher's command line (``None`` for ``adaptkit run`` alone, or when it cannot be read).
    command: tuple[str, ...] | None = None

    def describe(self) -> str:
        """``torchrun: 2 processes on 1 node``."""
        plural = "es" if self.processes != 1 else ""
        return f"{self.launcher}: {self.processes} process{plural} on {self.nodes} node{'s' if self.nodes != 1 else ''}"

    def resume_command(self, alone: Sequence[str]) -> str:
        """The command that resumes the run: the launcher's own with ``--resume`` in place of any
        ``--resume``/``--overwrite``, else ``alone`` (the ``adaptkit run …`` words) with ``--resume``."""
        words = list(self.command) if self.command else list(alone)
        kept = []
        skip_value = False
        for word in words:
            if skip_value:
                skip_value = False
                if not word.startswith("-"):
                    continue
            if word in _RESTART_OPTIONS or word.startswith("--resume="):
                skip_value = word == "--resume"
                continue
            kept.append(word)
        return shlex.join([*kept, "--resume"])


def _parent_command() -> tuple[str, ...] | None:
    """The parent process's argv, with ``python /path/to/torchrun`` shown as ``torchrun``."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if len(argv) > 1 and Path(argv[0]).name.startswith("python") and not argv[1].startswith("-"):
        argv = [Path(argv[1]).name, *argv[2:]]
    elif argv:
        argv[0] = Path(argv[0]).name
    return tuple(argv) or None


def current_launch(environ: dict[str, str] | None = None, parent: tuple[str, ...] | None = None) -> Launch:
    """This process's :class:`Launch` (``environ`` and ``parent`` default to this process's own)."""
    env = os.environ if environ is None else environ
    processes = int(env.get("WORLD_SIZE", "1") or 1)
    if processes <= 1 and "LOCAL_RANK" not in env:
        return Launch("adaptkit run", 1, 1)
    per_node = max(1, int(env.get("LOCAL_WORLD_SIZE", processes) or processes))
    command = _parent_command() if parent is None and environ is None else parent
    name = next((n for word, n in LAUNCHERS for part in (command or ())[:3] if word in part), None)
    if name is None:  # e.g. a cluster scheduler's step daemon: its command line is not the user's
        return Launch("a launcher", processes, max(1, processes // per_node))
    return Launch(name, processes, max(1, processes // per_node), command)
