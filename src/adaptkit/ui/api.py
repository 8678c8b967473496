"""The JSON routes the pages' scripts call: status and metrics to poll, and the actions
(validate, launch, stop, resume, export, compare), each through the same code as its CLI command.

A refused action answers ``{"error": "<one line>"}`` with status 400, the line the CLI would print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adaptkit.errors import UserError
from adaptkit.run import RunDir, finite
from adaptkit.ui.context import context
from adaptkit.ui.drafts import save_draft, validate_draft
from adaptkit.ui.jobs import run_argv
from adaptkit.ui.status import FINISHED, RUNNING, is_run_dir

#: The metrics.jsonl columns the run page draws.
CURVES = ("loss", "val_loss", "lr")


def reply(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(finite(data), status_code=status)


async def body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise UserError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise UserError("the request body is not a JSON object")
    return data


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise UserError(f"{key}: expected a string")
    return value


async def runs(request: Request) -> JSONResponse:
    ui = context(request)
    return reply({"runs": [s.to_dict() for s in ui.statuses()], "jobs": [j.to_dict() for j in ui.queue.jobs()]})


async def run(request: Request) -> JSONResponse:
    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    return reply({"status": ui.status(name).to_dict(), "jobs": [j.to_dict() for j in ui.queue.jobs(name)]})


async def metrics(request: Request) -> JSONResponse:
    """``{"rows": [{"step", "loss"?, "val_loss"?, "lr"?}, ...]}`` from the run's metrics.jsonl."""
    from adaptkit.interop.metadata import read_metrics

    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    rows = []
    for row in read_metrics(RunDir(ui.run_dir(name)).metrics):
        kept = {k: row[k] for k in CURVES if isinstance(row.get(k), (int, float))}
        if isinstance(row.get("step"), int) and kept:
            rows.append({"step": row["step"], **kept})
    return reply({"rows": rows})


async def validate(request: Request) -> JSONResponse:
    ui = context(request)
    data = await body(request)
    result = await run_in_threadpool(validate_draft, ui.runs_dir, _text(data, "name"), _text(data, "toml"))
    return reply(result.to_dict())


async def launch(request: Request) -> JSONResponse:
    """Validate the draft as ``adaptkit validate`` would, keep it, and queue ``adaptkit run`` on it."""
    ui = context(request)
    data = await body(request)
    name, text, overwrite = _text(data, "name"), _text(data, "toml"), bool(data.get("overwrite"))
    checked = await run_in_threadpool(validate_draft, ui.runs_dir, name, text)
    if not checked.ok:
        return reply(checked.to_dict() | {"error": checked.errors[0]}, 400)
    if is_run_dir(ui.run_dir(name)) and not overwrite:
        raise UserError(
            f"{name}: {ui.runs_dir / name} already holds a run; resume it from its page, tick overwrite, "
            "or choose another name"
        )
    recipe = save_draft(ui.runs_dir, name, text)
    job = ui.queue.submit(name, run_argv(recipe, ui.runs_dir, name, overwrite=overwrite), "new")
    return reply({"job": job.to_dict(), "url": f"/runs/{name}"})


async def stop(request: Request) -> JSONResponse:
    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    return reply({"message": ui.queue.stop(name)})


async def resume(request: Request) -> JSONResponse:
    """``adaptkit run RUN/recipe.toml --resume`` (``steps`` raises ``train.steps`` to train further)."""
    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    data = await body(request)
    steps = data.get("steps") or None
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise UserError("steps: expected a positive whole number")
    state = ui.status(name).state
    if state == RUNNING:
        raise UserError(f"{name}: running; stop it before resuming")
    if state == FINISHED and steps is None:
        raise UserError(f"{name}: finished; give more steps to train further")
    recipe = RunDir(ui.run_dir(name)).recipe
    job = ui.queue.submit(name, run_argv(recipe, ui.runs_dir, name, resume=True, steps=steps), "resume")
    return reply({"job": job.to_dict()})


async def export(request: Request) -> JSONResponse:
    """What ``adaptkit export RUN --format F [--checkpoint C] [--overwrite]`` does, into ``RUN/exports/``."""
    from adaptkit.interop.export import export_run

    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    data = await body(request)
    checkpoint = data.get("checkpoint") or None
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise UserError("checkpoint: expected a checkpoint name")
    path = await run_in_threadpool(
        export_run,
        ui.run_dir(name),
        _text(data, "format"),
        None,
        checkpoint=checkpoint,
        overwrite=bool(data.get("overwrite")),
    )
    return reply({"path": str(path), "url": ui.file_url(Path(path))})


async def compare(request: Request) -> JSONResponse:
    """``adaptkit compare`` over evaluated runs; the report is kept in ``<runs>/.adaptkit-ui/compare/``."""
    from adaptkit.evaluation.compare import compare_runs
    from adaptkit.evaluation.ranking import DEFAULT_TOLERANCE

    ui = context(request)
    data = await body(request)
    names = data.get("runs")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise UserError("compare: pick at least two runs")
    for name in names:
        if not ui.status(ui.known_run(name)).figures:
            raise UserError(f"{name}: not evaluated yet (adaptkit eval {ui.runs_dir / name})")
    out = ui.compare_report(names)
    await run_in_threadpool(compare_runs, [ui.run_dir(n) for n in names], out, DEFAULT_TOLERANCE)
    return reply({"url": f"/compare/report/{out.name}"})


ROUTES = [
    Route("/api/runs", runs),
    Route("/api/runs/{name}", run),
    Route("/api/runs/{name}/metrics", metrics),
    Route("/api/runs/{name}/stop", stop, methods=["POST"]),
    Route("/api/runs/{name}/resume", resume, methods=["POST"]),
    Route("/api/runs/{name}/export", export, methods=["POST"]),
    Route("/api/validate", validate, methods=["POST"]),
    Route("/api/launch", launch, methods=["POST"]),
    Route("/api/compare", compare, methods=["POST"]),
]
