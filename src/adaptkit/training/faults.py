"""Fault injection for the reliability tests: inert unless ``ADAPTKIT_FAULT`` is set.

``ADAPTKIT_FAULT`` holds comma-separated faults ``KIND:POINT:STEP``, read once at import:

- ``kill:POINT:STEP`` — SIGKILL this process when the code passes ``POINT`` at ``STEP``;
- ``enospc:POINT:STEP`` — raise ``OSError(ENOSPC)`` there (a full disk);
- ``nan:loss:STEP`` — make the loss of optimizer step ``STEP`` (0-based, as the loop counts) NaN.

Points: ``step-end`` (after an optimizer step, ``STEP`` = steps done), and inside a checkpoint
write of ``STEP``: ``checkpoint-trainable`` (weights written), ``checkpoint-state`` (optimizer
state written), ``checkpoint-manifest`` (manifest written, folder not yet renamed),
``checkpoint-renamed`` (renamed, retention not yet applied), ``checkpoint-retention`` (between
deleting old checkpoints). In a normal run :func:`inject` is one empty-tuple check.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass

import torch

ENV = "ADAPTKIT_FAULT"
KINDS = ("kill", "enospc", "nan")


@dataclass(frozen=True)
class Fault:
    """One injected fault: what happens (``kind``), where (``point``) and at which step."""

    kind: str
    point: str
    step: int


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """Parse ``KIND:POINT:STEP[,...]``; a malformed entry is an error (a test typo must not pass silently)."""
    faults = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, rest = item.partition(":")
        point, _, step = rest.rpartition(":")
        if kind not in KINDS or not point or not step.isdigit():
            raise ValueError(f"{ENV}: {item!r} is not KIND:POINT:STEP with KIND one of {', '.join(KINDS)}")
        faults.append(Fault(kind, point, int(step)))
    return tuple(faults)


FAULTS: tuple[Fault, ...] = parse_faults(os.environ.get(ENV, ""))


def _matching(kind: str, point: str, step: int) -> bool:
    return any(f.kind == kind and f.point == point and f.step == step for f in FAULTS)


def inject(point: str, step: int) -> None:
    """Kill the process or raise ENOSPC if a fault is set for ``point`` at ``step``; else nothing."""
    if not FAULTS:
        return
    if _matching("kill", point, step):
        os.kill(os.getpid(), signal.SIGKILL)
    if _matching("enospc", point, step):
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected by {ENV})")


def poison_loss(loss: torch.Tensor, step: int) -> torch.Tensor:
    """``loss`` turned NaN if a ``nan:loss:STEP`` fault is set for ``step``; else ``loss`` itself."""
    if FAULTS and _matching("nan", "loss", step):
        return loss * float("nan")
    return loss
