"""What every route shares: the runs folder, the run queue and the access rules (``request.app.state.ui``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request

from adaptkit.ui.drafts import RUN_NAME, ui_dir
from adaptkit.ui.jobs import QUEUED, RUNNING, JobQueue
from adaptkit.ui.security import Access
from adaptkit.ui.status import FAILED, RunStatus, is_run_dir, list_run_dirs, read_status

#: The state of a run the queue holds before its process has written the run folder.
WAITING = "queued"
STARTING = "starting"


@dataclass
class UIContext:
    runs_dir: Path
    queue: JobQueue
    access: Access

    def run_dir(self, name: str) -> Path:
        return self.runs_dir / name

    def known_run(self, name: str) -> str:
        """``name`` when it is a run folder here or a job of the queue; else 404."""
        if RUN_NAME.match(name) and (is_run_dir(self.run_dir(name)) or self.queue.jobs(name)):
            return name
        raise HTTPException(404, f"no run {name!r} in {self.runs_dir}")

    def status(self, name: str) -> RunStatus:
        """The folder's status, or (before the process wrote the folder) the queue's."""
        if is_run_dir(self.run_dir(name)):
            return read_status(self.run_dir(name))
        jobs = self.queue.jobs(name)
        last = jobs[-1].state if jobs else None
        state = {QUEUED: WAITING, RUNNING: STARTING}.get(last, FAILED)
        return RunStatus(name=name, state=state, base="", family="", method="", step=0, total=0)

    def statuses(self) -> list[RunStatus]:
        """Every run folder, plus the runs the queue holds that have none yet."""
        found = [read_status(path) for path in list_run_dirs(self.runs_dir)]
        names = {s.name for s in found}
        pending = {j.run_name for j in self.queue.jobs() if j.state in (QUEUED, RUNNING) and j.run_name not in names}
        return [self.status(name) for name in sorted(pending)] + found

    def file_url(self, path: Path) -> str | None:
        """The ``/files/…`` URL of a file inside the runs folder (None outside it)."""
        base, target = self.runs_dir.resolve(), path.resolve()
        return f"/files/{target.relative_to(base).as_posix()}" if target.is_relative_to(base) else None

    def compare_report(self, names: list[str]) -> Path:
        return ui_dir(self.runs_dir, "compare") / f"{'-vs-'.join(names)[:200]}.html"


def context(request: Request) -> UIContext:
    return request.app.state.ui
