"""Who may talk to the UI: every request passes :class:`Guard` before any route sees it.

* **Loopback** (the default, ``127.0.0.1``): the ``Host`` header must name the loopback address the
  server listens on (a web page on another site that rebinds its DNS name to 127.0.0.1 is refused).
* **Any other host**: every request carries the token printed at start, as ``?token=`` (the first page
  opened; it then sets an ``HttpOnly``, ``SameSite=Strict`` cookie), that cookie, or the
  ``X-Adaptkit-Token`` header.
* **State-changing requests** (anything but GET/HEAD/OPTIONS) must come from the UI's own pages
  (``Origin`` equal to the ``Host``, or ``Sec-Fetch-Site: same-origin``) or carry the token in the
  header; a cookie alone never suffices, so another site cannot make a browser launch or stop a run.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = "x-adaptkit-token"
TOKEN_COOKIE = "adaptkit_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: an address only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    """The rules for one server: its port, and its token (None on loopback, where none is needed)."""

    port: int
    token: str | None = None

    def host_allowed(self, host_header: str) -> bool:
        """With no token, only the loopback names of this port (DNS rebinding); with one, any."""
        if self.token is not None:
            return True
        return host_header in {f"{name}:{self.port}" for name in LOOPBACK_NAMES} | set(LOOPBACK_NAMES)

    def token_matches(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(given, self.token)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def same_origin(headers: dict[str, str]) -> bool:
    """The request comes from a page the UI served (``Origin`` matches ``Host``, or the browser says so)."""
    if headers.get("sec-fetch-site") == "same-origin":
        return True
    origin = headers.get("origin")
    return bool(origin) and urlsplit(origin).netloc == headers.get("host")


class Guard:
    """ASGI middleware applying :class:`Access` to every HTTP request."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal, set_cookie = self.check(scope, headers)
        if refusal is not None:
            status, line = refusal
            await _plain(send, status, line)
            return
        if not set_cookie:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.access.token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def check(self, scope: Scope, headers: dict[str, str]) -> tuple[tuple[int, str] | None, bool]:
        """``((status, one line) or None, whether to set the token cookie)``."""
        access = self.access
        if not access.host_allowed(headers.get("host", "")):
            return (403, f"refused: Host {headers.get('host', '')!r} is not this server's loopback address"), False
        by_header = access.token_matches(headers.get(TOKEN_HEADER))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        by_query = access.token_matches(query)
        cookie = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
        by_cookie = access.token_matches(cookie.value if cookie else None)
        if access.token is not None and not (by_header or by_query or by_cookie):
            return (401, "refused: this adaptkit ui needs its token (open the URL it printed at start)"), False
        if scope["method"] not in SAFE_METHODS and not (by_header or same_origin(headers)):
            return (403, "refused: a state-changing request must come from the UI's own pages"), False
        return None, by_query and not by_cookie


async def _plain(send: Send, status: int, line: str) -> None:
    body = (line + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
