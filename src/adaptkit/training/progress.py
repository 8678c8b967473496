"""The training progress display: a rich bar with step, loss, lr, images/s and ETA.

Without the bar — stdout is not a terminal (CI, ``nohup``, log files) or ``--no-progress`` — one
plain line per logging step instead, so a log shows the loss as it goes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress:
    """Context manager showing training progress; prints nothing when ``enabled`` is false (other
    processes than the main one); ``bar`` false (``--no-progress``) keeps only the plain lines."""

    def __init__(
        self, total: int, completed: int = 0, enabled: bool = True, bar: bool = True, console: Console | None = None
    ) -> None:
        self.enabled = enabled
        self.console = console or Console(highlight=False)
        self.total = total
        self.live = enabled and bar and self.console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self._task = self._progress.add_task("train", total=total, completed=completed, stats="")

    def __enter__(self) -> "TrainingProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def advance(self, step: int) -> None:
        self._progress.update(self._task, completed=step)

    def note(self, line: str) -> None:
        """Print one line above the bar (nothing when disabled)."""
        if self.enabled:
            self.console.print(line)

    def update(self, step: int, logs: dict[str, Any]) -> None:
        stats = f"loss {logs['loss']:.4f}  lr {logs['lr']:.2e}  {logs['images_per_s']:.2f} img/s"
        self._progress.update(self._task, completed=step, stats=stats)
        if self.enabled and not self.live:
            self.console.print(f"step {step}/{self.total}  {stats}  peak {logs['peak_memory_mb']:.0f} MiB")
