"""``adaptkit ui``'s server: the access rules for the address it binds, the line it prints, uvicorn."""

from __future__ import annotations

from pathlib import Path

from adaptkit.errors import UserError
from adaptkit.ui.security import Access, is_loopback, new_token

INSTALL_HINT = "adaptkit ui needs starlette and uvicorn: pip install 'adaptkit[ui]'"


def require_ui_packages() -> None:
    """One line naming the extra when starlette, uvicorn or jinja2 is missing."""
    import importlib.util

    missing = [name for name in ("starlette", "uvicorn", "jinja2") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def access_for(host: str, port: int) -> Access:
    """No token on a loopback address; a fresh one on any other."""
    return Access(port=port, token=None if is_loopback(host) else new_token())


def url_for(host: str, port: int, access: Access) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={access.token}" if access.token else "")


def serve(runs_dir: Path, host: str, port: int, concurrency: int = 1) -> None:
    """Serve the UI until Ctrl-C (runs it started keep training: they live in their own sessions)."""
    require_ui_packages()
    import uvicorn

    from adaptkit.ui.app import build_app
    from adaptkit.ui.jobs import JobQueue

    access = access_for(host, port)
    app = build_app(runs_dir, access, JobQueue(Path(runs_dir).resolve(), concurrency))
    print(f"adaptkit ui: {url_for(host, port, access)}  (runs folder: {Path(runs_dir).resolve()})", flush=True)
    if access.token:
        print("every request needs that token: share the URL only with whom may launch runs here", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:  # port in use, address not available
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from exc
