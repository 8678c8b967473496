"""Starting ``adaptkit ui`` as a real process on a free loopback port, and talking to it, for the UI tests
(tests/test_ui.py, tests/test_ui_browser.py) and scripts/ui-screenshot.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
TINY_SMOKE = (ROOT / "recipes" / "tiny-smoke.toml").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.3) -> T:
    """``predicate()``'s first truthy value, polled until ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def get_json(url: str) -> Any:
    """The JSON at ``url``, or None while the server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)
    except OSError:
        return None


def post_json(url: str, data: dict[str, Any], origin: str) -> Any:
    request = urllib.request.Request(
        url, json.dumps(data).encode(), {"Origin": origin, "Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


@contextmanager
def ui_server(runs: Path, cwd: Path, timeout: float = 120) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``adaptkit ui --runs RUNS`` on a free port, in its own process group; yields its URL and process,
    then kills the group (the runs it launched live in sessions of their own and are not touched)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "adaptkit", "ui", "--runs", str(runs), "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(url + "/api/runs") is not None or server.poll() is not None, timeout, "the UI")
        assert server.poll() is None, f"adaptkit ui exited with status {server.returncode}"
        yield url, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def kill(pid: int | None) -> None:
    """SIGKILL ``pid`` if it still runs."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
