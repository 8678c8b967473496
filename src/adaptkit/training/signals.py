"""Graceful stop on SIGINT/SIGTERM: finish the current step, checkpoint, exit 130/143.

The first signal only raises a flag that the loop reads between optimizer steps; a second
SIGINT interrupts at once (checkpoints are written atomically, so the previous one stays intact).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """Raised by the trainer after it saved a checkpoint in response to a signal."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = EXIT_CODES.get(signal.Signals(signum), 128 + signum)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """Data-loader workers ignore SIGINT/SIGTERM: the main process finishes the step and stops them."""
    for sig in EXIT_CODES:
        signal.signal(sig, signal.SIG_IGN)


class StopFlag:
    """Which signal asked the run to stop (None while none has)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the returned flag instead of killing the process."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return

    def on_signal(signum: int, frame: object) -> None:
        if flag.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint "
            "(Ctrl-C again to stop at once)",
            flush=True,
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in EXIT_CODES}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
