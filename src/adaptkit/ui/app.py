"""The Starlette application: the pages, the JSON routes and the package's static files, behind
:class:`~adaptkit.ui.security.Guard`; a :class:`~adaptkit.errors.UserError` becomes one line."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from adaptkit.errors import UserError
from adaptkit.ui import api, pages
from adaptkit.ui.context import UIContext
from adaptkit.ui.jobs import JobQueue
from adaptkit.ui.security import Access, Guard

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def user_error(request: Request, exc: Exception) -> Response:
    """The error's first line, as JSON for the scripts and as text for a page."""
    line = exc.lines[0] if isinstance(exc, UserError) and exc.lines else str(exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": line}, status_code=400)
    return PlainTextResponse(line + "\n", status_code=400)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code)


def build_app(runs_dir: Path, access: Access, queue: JobQueue | None = None) -> Starlette:
    """The UI over ``runs_dir`` (created when missing), launching through ``queue`` (one run at a time)."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    app = Starlette(
        routes=[*pages.ROUTES, *api.ROUTES, Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")],
        middleware=[Middleware(Guard, access=access)],
        exception_handlers={UserError: user_error, HTTPException: http_error},
    )
    app.state.ui = UIContext(runs_dir, queue or JobQueue(runs_dir), access)
    return app
