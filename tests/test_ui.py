"""``adaptkit ui`` without a browser: status inferred from run folders, the files it serves (and
refuses), its token and same-origin rules, recipe validation through the CLI's loader, and runs that
outlive the UI. The browser drives it in tests/test_ui_browser.py."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from adaptkit.training import checkpoint as ckpt  # noqa: E402
from adaptkit.ui.app import build_app  # noqa: E402
from adaptkit.ui.files import inside  # noqa: E402
from adaptkit.ui.jobs import JobQueue, run_argv  # noqa: E402
from adaptkit.ui.security import Access  # noqa: E402
from adaptkit.ui.status import FAILED, FINISHED, INTERRUPTED, RUNNING, infer_state, read_status  # noqa: E402

from ui_helpers import TINY_SMOKE, kill, post_json, ui_server, wait_for  # noqa: E402

PORT = 7860
ORIGIN = {"Origin": f"http://127.0.0.1:{PORT}"}
RECIPE = """[model]\nbase = "testing:tiny-sd"\nfamily = "sd1"\n[method]\nname = "lora"\n[train]\nsteps = 20\n"""


def make_run(
    runs: Path,
    name: str,
    logged: int = 0,
    checkpoints: tuple[int, ...] = (),
    result_steps: int | None = None,
    lock: dict | None = None,
) -> Path:
    """A run folder as adaptkit writes it: recipe.toml, metrics rows every 5 steps, checkpoints, result."""
    run = runs / name
    run.mkdir(parents=True)
    (run / "recipe.toml").write_text(RECIPE)
    rows = [
        {"step": s, "loss": 1.0 / s, "lr": 1e-3, "images_per_s": 8.0, "time_s": s * 0.5}
        for s in range(5, logged + 1, 5)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step in checkpoints:
        ckpt.write_checkpoint(run / "checkpoints", step, {"unet.w": torch.zeros(2)}, {"ema": None}, {})
    if result_steps is not None:
        (run / "result.json").write_text(json.dumps({"steps": result_steps}))
    (run / ".lock").write_text(json.dumps(lock) if lock else "")
    return run


def client(runs: Path, token: str | None = None, queue: JobQueue | None = None) -> TestClient:
    app = build_app(runs, Access(port=PORT, token=token), queue)
    return TestClient(app, base_url=f"http://127.0.0.1:{PORT}")


# --------------------------------------------------------------------------- status


def test_the_state_is_inferred_from_what_the_folder_holds() -> None:
    assert infer_state(True, None, None, 5) == RUNNING
    assert infer_state(False, 20, 20, 20) == FINISHED
    assert infer_state(False, None, 10, 10) == INTERRUPTED  # a clean stop checkpoints the last step
    assert infer_state(False, 10, 15, 15) == INTERRUPTED  # resumed with more steps, then stopped
    assert infer_state(False, None, 10, 15) == FAILED  # crashed after its last checkpoint
    assert infer_state(False, 10, 10, 12) == FAILED  # ... also when resumed after it had finished
    assert infer_state(False, None, None, 0) == FAILED  # before its first


def test_a_running_session_counts_to_the_steps_its_command_gave() -> None:
    from adaptkit.ui.status import session_steps

    assert session_steps({"command": "adaptkit run r.toml --set train.steps=40 --resume"}, 5000) == 40
    assert session_steps({"command": "adaptkit run r.toml"}, 5000) == 5000


def test_runs_started_from_the_cli_are_listed_with_their_state(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": "adaptkit run x"}
    make_run(runs, "going", logged=10, checkpoints=(5,), lock=me)
    make_run(runs, "done", logged=20, checkpoints=(20,), result_steps=20)
    make_run(runs, "stopped", logged=10, checkpoints=(10,))
    make_run(runs, "crashed", logged=15, checkpoints=(10,))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    make_run(runs, "killed", logged=5, lock={"pid": int(dead.stdout), "host": socket.gethostname()})
    states = {s["name"]: s for s in client(runs).get("/api/runs").json()["runs"]}
    assert {n: s["state"] for n, s in states.items()} == {
        "going": RUNNING,
        "done": FINISHED,
        "stopped": INTERRUPTED,
        "crashed": FAILED,
        "killed": FAILED,  # a lock left by a dead process is no lock
    }
    going = states["going"]
    assert (going["step"], going["total"], going["base"], going["family"], going["method"]) == (
        10,
        20,
        "testing:tiny-sd",
        "sd1",
        "lora",
    )
    assert going["images_per_s"] == 8.0 and going["eta_s"] == pytest.approx(10 * 0.5)  # 0.5 s a step, 10 to go
    assert going["pid"] == os.getpid() and states["done"]["eta_s"] is None
    assert states["stopped"]["checkpoints"] == ["step-000010"]


def test_the_runs_page_shows_each_run_and_its_eval_figures(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs, "evaluated", logged=20, checkpoints=(20,), result_steps=20)
    (run / "eval").mkdir()
    figure = {"metric": "embedded_probes", "name": "target_style", "value": 0.25, "ci_low": 0.1, "ci_high": 0.4}
    (run / "eval" / "metrics.json").write_text(json.dumps({"figures": [figure | {"description": "d"}]}))
    page = client(runs).get("/").text
    assert 'href="/runs/evaluated"' in page and 'data-state="finished"' in page
    assert "20/20" in page and "target_style +0.25" in page
    assert read_status(run).figures[0]["name"] == "target_style"


def test_the_run_page_and_its_metrics_endpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs, "r", logged=10, checkpoints=(10,))
    with (run / "metrics.jsonl").open("a") as out:
        out.write(json.dumps({"step": 10, "val_loss": 0.7}) + "\n" + '{"step": 15, "lo')  # torn last line
    ui = client(runs)
    rows = ui.get("/api/runs/r/metrics").json()["rows"]
    assert [r["step"] for r in rows] == [5, 10, 10] and rows[-1] == {"step": 10, "val_loss": 0.7}
    page = ui.get("/runs/r").text
    assert 'id="loss-chart"' in page and "step-000010" in page and 'data-state="interrupted"' in page
    assert ui.get("/runs/nope").status_code == 404 and ui.get("/api/runs/nope").status_code == 404


# --------------------------------------------------------------------------- files


def test_only_files_inside_the_runs_folder_are_served(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs, "r")
    (run / "samples").mkdir()
    (run / "samples" / "step-000000.png").write_bytes(b"\x89PNG grid")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (run / "samples" / "out.png").symlink_to(secret)
    (run / "samples" / "up").symlink_to(tmp_path, target_is_directory=True)
    assert inside(runs, "r/samples/step-000000.png") == (run / "samples" / "step-000000.png").resolve()
    for refused in ("", "/etc/passwd", "r/../../secret.txt", "r/samples/out.png", "r/samples/up/secret.txt",
                    "r/.lock", "r/samples", "r/x\x00.png", "r\\..\\..\\secret.txt"):  # fmt: skip
        assert inside(runs, refused) is None, refused
    ui = client(runs)
    assert ui.get("/files/r/samples/step-000000.png").content == b"\x89PNG grid"
    for url in ("/files/r/%2e%2e/%2e%2e/secret.txt", "/files/%2e%2e/secret.txt", "/files/r/samples/out.png",
                "/files/%2Fetc%2Fpasswd", "/files/r/samples/up/secret.txt", "/files/r/.lock"):  # fmt: skip
        reply = ui.get(url)
        assert reply.status_code == 404 and b"outside" not in reply.content, url


def test_a_served_report_is_sandboxed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs, "r")
    (run / "eval").mkdir()
    (run / "eval" / "report.html").write_text("<h1>report</h1>")
    reply = client(runs).get("/files/r/eval/report.html")
    assert (
        reply.headers["content-security-policy"] == "sandbox" and reply.headers["x-content-type-options"] == "nosniff"
    )


# --------------------------------------------------------------------------- access


def test_loopback_refuses_other_host_names_and_cross_origin_posts(tmp_path: Path) -> None:
    ui = client(tmp_path / "runs")
    assert ui.get("/").status_code == 200
    assert ui.get("/", headers={"Host": "attacker.example:7860"}).status_code == 403  # DNS rebinding
    body = {"name": "x", "toml": RECIPE}
    assert ui.post("/api/validate", json=body).status_code == 403  # no Origin: not from the UI's pages
    refused = ui.post("/api/validate", json=body, headers={"Origin": "http://attacker.example"})
    assert refused.status_code == 403 and refused.text.startswith("refused: a state-changing request")
    assert ui.post("/api/validate", json=body, headers=ORIGIN).status_code == 200
    assert ui.post("/api/validate", json=body, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_another_host_needs_the_token_on_every_request(tmp_path: Path) -> None:
    token = "s3cret-token"
    ui = client(tmp_path / "runs", token=token)
    for url in ("/", "/api/runs", "/static/ui.js", "/files/x"):
        reply = ui.get(url)
        assert reply.status_code == 401 and "needs its token" in reply.text, url
    assert ui.get("/?token=wrong").status_code == 401
    first = ui.get(f"/?token={token}")
    assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
    assert "SameSite=Strict" in first.headers["set-cookie"]
    assert ui.get("/api/runs").status_code == 200  # the cookie now
    body = {"name": "x", "toml": RECIPE}
    assert ui.post("/api/validate", json=body, headers={"Origin": "http://evil.example"}).status_code == 403
    assert ui.post("/api/validate", json=body, headers=ORIGIN).status_code == 200
    bare = client(tmp_path / "runs", token=token)
    assert bare.post("/api/validate", json=body, headers={"X-Adaptkit-Token": token}).status_code == 200
    assert bare.get("/", headers={"Host": "gpu-box.lan:7860", "X-Adaptkit-Token": token}).status_code == 200


def test_a_non_loopback_host_gets_a_token() -> None:
    from adaptkit.ui.server import access_for, url_for

    assert access_for("127.0.0.1", 1).token is None and access_for("::1", 1).token is None
    remote = access_for("0.0.0.0", 8000)
    assert remote.token and len(remote.token) >= 24
    assert url_for("0.0.0.0", 8000, remote) == f"http://0.0.0.0:8000/?token={remote.token}"


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize(
    "toml, fragment",
    [
        ("[train\nsteps = 1\n", "x.toml: invalid TOML"),
        (TINY_SMOKE.replace("steps = 20", "stepz = 20"), "x.toml: train.stepz: unknown key (valid: steps"),
        (TINY_SMOKE + '[plugins]\nmodules = ["no_such_plugin_module_xyz"]\n', "cannot import module 'no_such_plugin"),
        (TINY_SMOKE.replace('"lora"', '"lorx"'), "x.toml: method.name: unknown method 'lorx' (registered:"),
    ],
    ids=["invalid-toml", "unknown-key", "plugin-module", "unknown-method"],
)
def test_a_malformed_recipe_is_refused_with_the_clis_one_line(tmp_path: Path, toml: str, fragment: str) -> None:
    ui = client(tmp_path / "runs")
    checked = ui.post("/api/validate", json={"name": "x", "toml": toml}, headers=ORIGIN).json()
    assert not checked["ok"] and any(fragment in line for line in checked["errors"]), checked
    launched = ui.post("/api/launch", json={"name": "x", "toml": toml}, headers=ORIGIN)
    assert launched.status_code == 400 and fragment in " ".join(launched.json()["errors"])
    assert ui.get("/api/runs").json()["jobs"] == []


def test_a_valid_recipe_goes_into_the_runs_folder_under_its_name(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ui = client(runs)
    toml = TINY_SMOKE
    checked = ui.post("/api/validate", json={"name": "mine", "toml": toml}, headers=ORIGIN).json()
    assert checked["ok"] and checked["run_dir"] == str((runs / "mine").resolve())
    bad_name = ui.post("/api/validate", json={"name": "../up", "toml": toml}, headers=ORIGIN).json()
    assert "run name '../up': use letters" in bad_name["errors"][0]
    make_run(runs, "taken")
    refused = ui.post("/api/launch", json={"name": "taken", "toml": toml}, headers=ORIGIN)
    assert refused.status_code == 400 and "already holds a run" in refused.json()["error"]
    assert "[model]" in ui.get("/new?from=shipped:tiny-smoke").text
    assert "not-a-source" in ui.get("/new?from=not-a-source").text


def test_the_resume_command_is_the_clis(tmp_path: Path) -> None:
    argv = run_argv(tmp_path / "runs" / "r" / "recipe.toml", tmp_path / "runs", "r", resume=True, steps=40)
    assert argv[:2] == ["run", str(tmp_path / "runs" / "r" / "recipe.toml")] and argv[-1] == "--resume"
    assert ["--set", 'run.name="r"'] == argv[2:4] and "train.steps=40" in argv


# --------------------------------------------------------------------------- processes


def test_a_launched_run_is_in_its_own_session_and_outlives_a_killed_ui(tmp_path: Path) -> None:
    """The UI (its whole process group) is SIGKILLed while its run starts: the run goes on and takes its lock."""
    from adaptkit.training.run_lock import live_holder

    runs, run_pid = tmp_path / "runs", None
    try:
        with ui_server(runs, tmp_path) as (url, server):
            toml = TINY_SMOKE.replace("steps = 20", "steps = 5000")
            run_pid = post_json(url + "/api/launch", {"name": "survivor", "toml": toml}, url)["job"]["pid"]
            assert os.getsid(run_pid) == run_pid != os.getsid(server.pid)
        # the with block killed the UI's process group
        holder = wait_for(lambda: live_holder(runs / "survivor"), 120, "the run to hold its folder")
        assert holder["pid"] == run_pid
    finally:
        kill(run_pid)


# --------------------------------------------------------------------------- compare and export


def evaluated_run(runs: Path, name: str, style: float) -> Path:
    """A finished run with the ``eval/`` that ``adaptkit eval`` writes (one prompt, one seed)."""
    from PIL import Image

    run = make_run(runs, name, logged=20, checkpoints=(20,), result_steps=20)
    (run / "recipe.toml").write_text(TINY_SMOKE)
    (run / "eval" / "images").mkdir(parents=True)
    for side, colour in (("base", "white"), ("adapted", "red")):
        Image.new("RGB", (8, 8), colour).save(run / "eval" / "images" / f"{side}-000.png")
    figure = {"metric": "embedded_probes", "name": "target_style", "value": style, "ci_low": 0.0, "ci_high": style,
              "higher_is_better": True, "n": 1, "description": "style", "base": 0.0, "adapted": style}  # fmt: skip
    metrics = {"figures": [figure], "pairs": [{"prompt": "a star", "seed": 0}], "settings": {}, "unavailable": {}}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_compare_shows_the_report_of_adaptkit_compare(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    evaluated_run(runs, "a", 0.5)
    evaluated_run(runs, "b", 0.25)
    make_run(runs, "unevaluated")
    ui = client(runs)
    page = ui.get("/compare").text
    assert re.search(r'value="a"\s*>', page)  # selectable
    assert re.search(r'value="unevaluated"\s+disabled', page)
    reply = ui.post("/api/compare", json={"runs": ["a", "b"]}, headers=ORIGIN).json()
    report = ui.get(reply["url"])
    assert report.status_code == 200 and "adaptkit comparison: a, b" in report.text
    assert report.headers["content-security-policy"] == "sandbox"
    refused = ui.post("/api/compare", json={"runs": ["a", "unevaluated"]}, headers=ORIGIN)
    assert refused.status_code == 400 and refused.json()["error"].startswith("unevaluated: not evaluated yet")
    one = ui.post("/api/compare", json={"runs": ["a"]}, headers=ORIGIN)
    assert one.json() == {"error": "compare: pick at least two runs"}
    assert ui.get("/compare/report/..%2F..%2Fa%2Frecipe.toml").status_code == 404


def test_export_refusals_are_the_clis_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "r", logged=10, checkpoints=(10,))
    (runs / "r" / "recipe.toml").write_text(TINY_SMOKE)
    reply = client(runs).post("/api/runs/r/export", json={"format": "kohya"}, headers=ORIGIN)
    assert reply.status_code == 400 and "r: the run has no adapter/ folder" in reply.json()["error"]
