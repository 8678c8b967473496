"""The one way the UI turns a URL path into a file: only a plain file inside the runs folder.

Refused (None): an empty or absolute path, a ``..`` or hidden (``.name``) part (the URL router has
already decoded ``%2e%2e``), a NUL byte, and anything that resolves outside the folder, such as a
symlink pointing out of it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

#: Response headers for every file served from a run folder. An HTML file (a report) is sandboxed:
#: it renders, images included, but runs no script in the UI's origin.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
HTML_HEADERS = {**FILE_HEADERS, "Content-Security-Policy": "sandbox"}


def inside(root: Path, relative: str) -> Path | None:
    """The file ``relative`` (a ``/``-separated path) names inside ``root``, or None when refused."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = PurePosixPath(relative)
    if parts.is_absolute() or any(part in ("", "..") or part.startswith(".") for part in parts.parts):
        return None
    base = root.resolve()
    target = (base / parts).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def headers_for(path: Path) -> dict[str, str]:
    """The headers :data:`FILE_HEADERS` / :data:`HTML_HEADERS` a served file gets."""
    return dict(HTML_HEADERS if path.suffix.lower() in (".html", ".htm", ".svg") else FILE_HEADERS)
