"""The HTML routes: the runs, one run, a new run, compare; the fragments the pages poll; and the files
of the runs folder (through :func:`adaptkit.ui.files.inside`, the only way a path becomes a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from adaptkit.errors import UserError
from adaptkit.recipe.shipped import shipped_recipes
from adaptkit.ui.context import context
from adaptkit.ui.drafts import UI_DIR, recipe_text
from adaptkit.ui.files import headers_for, inside
from adaptkit.ui.status import RunStatus

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
DEFAULT_SOURCE = "shipped:tiny-smoke"


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``; a dash for None."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3g}"


TEMPLATES.env.filters.update(duration=duration, number=number, signed=signed)


def render(request: Request, template: str, **values: Any) -> Response:
    return TEMPLATES.TemplateResponse(request, template, values)


async def runs_page(request: Request) -> Response:
    return render(request, "runs.html", runs=context(request).statuses(), jobs=context(request).queue.jobs())


async def runs_fragment(request: Request) -> Response:
    return render(request, "_runs_table.html", runs=context(request).statuses(), jobs=context(request).queue.jobs())


def _run_values(request: Request) -> dict[str, Any]:
    from adaptkit.interop.export import FORMATS

    ui = context(request)
    name = ui.known_run(request.path_params["name"])
    status: RunStatus = ui.status(name)
    return {"run": status, "jobs": ui.queue.jobs(name), "formats": FORMATS}


async def run_page(request: Request) -> Response:
    return render(request, "run.html", **_run_values(request))


async def run_fragment(request: Request) -> Response:
    return render(request, "_run_summary.html", **_run_values(request))


async def new_page(request: Request) -> Response:
    """The recipe editor, filled from ``?from=shipped:NAME`` or ``?from=run:NAME``."""
    ui = context(request)
    source = request.query_params.get("from", DEFAULT_SOURCE)
    error = None
    try:
        text = recipe_text(ui.runs_dir, source)
    except UserError as exc:
        text, error = "", exc.lines[0]
    name = source.partition(":")[2]
    return render(
        request,
        "new.html",
        shipped=shipped_recipes(),
        runs=[s.name for s in ui.statuses()],
        source=source,
        name=name,
        text=text,
        error=error,
    )


async def compare_page(request: Request) -> Response:
    return render(request, "compare.html", runs=context(request).statuses())


async def compare_report(request: Request) -> Response:
    ui = context(request)
    path = inside(ui.runs_dir / UI_DIR / "compare", request.path_params["file"])
    if path is None:
        raise HTTPException(404, "no such comparison")
    return FileResponse(path, headers=headers_for(path))


async def run_file(request: Request) -> Response:
    """A file of the runs folder (a sample grid, a report, an export); 404 for anything else."""
    path = inside(context(request).runs_dir, request.path_params["path"])
    if path is None:
        raise HTTPException(404, "no such file in the runs folder")
    return FileResponse(path, headers=headers_for(path))


ROUTES = [
    Route("/", runs_page),
    Route("/fragments/runs", runs_fragment),
    Route("/runs/{name}", run_page),
    Route("/fragments/runs/{name}", run_fragment),
    Route("/new", new_page),
    Route("/compare", compare_page),
    Route("/compare/report/{file}", compare_report),
    Route("/files/{path:path}", run_file),
]
