"""``adaptkit ui`` in a real browser (headless Chromium through Playwright, Debian's ``chromium``).

One run's whole life from the pages: write a recipe in the editor (a mistake shows the CLI's error line,
the fix clears it), launch it, watch the step counter and the loss curve move and a sample grid appear,
stop it (a clean checkpoint), resume it, read its evaluation, export it, and find it on the runs page.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

from ui_helpers import TINY_SMOKE, ui_server  # noqa: E402

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")

#: A run slow enough to watch (it would take minutes; the test stops it) on the embedded model, so the
#: evaluation after training (the embedded probes) writes a report.
RECIPE = """\
[model]
base = "embedded:tiny-sd"

[data]
adapter = "embedded-styles"
resolution = 64
[data.options]
style = "ink"
count = 16

[method]
name = "lora"
[method.options]
rank = 4
alpha = 4

[train]
steps = 5000
batch_size = 1
learning_rate = 1e-3
log_every = 1
seed = 0

[checkpoint]
every = 4
keep = 2

[sample]
sampler = "dpm-solver"
steps = 2
guidance = 3.0
every = 4
prompts = ["a large red triangle on a white background"]
seeds = [0]

[eval]
metrics = ["embedded_probes"]
prompts = 2
seeds_per_prompt = 1
batch_size = 2
"""
#: Generous: the CI machine has two cores shared with the rest of the suite.
WAIT_MS = 150_000


def step(page) -> int:
    return int(page.inner_text("#step"))


def test_launch_watch_stop_resume_and_report_in_the_browser(tmp_path: Path) -> None:
    started = time.monotonic()
    with ui_server(tmp_path / "runs", tmp_path) as (url, _server), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.set_default_timeout(WAIT_MS)
        try:
            # the editor: a shipped recipe, validated as it is typed
            page.goto(f"{url}/new?from=shipped:tiny-smoke")
            assert page.input_value("#name") == "tiny-smoke" and "[model]" in page.input_value("#toml")
            page.wait_for_selector("#validation.ok")
            page.fill("#name", "watched")
            page.fill("#toml", TINY_SMOKE.replace("steps = 20", "stepz = 20"))
            error = page.wait_for_selector("#validation.error li")
            assert error.inner_text().startswith("error: watched.toml: train.stepz: unknown key (valid: steps")
            page.fill("#toml", RECIPE)
            page.wait_for_selector("#validation.ok")
            assert page.inner_text("#validation") == f"valid: the run goes to {(tmp_path / 'runs' / 'watched')}"

            # launch, then watch it move
            page.click("#launch")
            page.wait_for_url(f"{url}/runs/watched")
            page.wait_for_function("() => parseInt(document.querySelector('#step').textContent) >= 1")
            first = step(page)
            page.wait_for_function(f"() => parseInt(document.querySelector('#step').textContent) >= {first + 2}")
            assert page.inner_text("#total") == "5000"
            assert page.locator("#state [data-state]").get_attribute("data-state") == "running"
            page.wait_for_function(
                "() => Number(document.querySelector('#loss-chart polyline.loss')?.dataset.points) >= 3"
            )
            assert int(page.locator("#lr-chart polyline.lr").get_attribute("data-points")) >= 3
            grid = page.wait_for_selector('#samples img[alt="sample grid step-000004.png"]')
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=grid)
            assert page.locator("#samples img").count() >= 2  # before training, and step 4

            # stop: a clean checkpoint, the run is interrupted
            page.click("#stop")
            page.wait_for_selector("#message:has-text('asked to stop')")
            page.wait_for_selector("#state [data-state=interrupted]")
            stopped = step(page)
            assert f"step-{stopped:06d}" in page.inner_text(".checkpoints")

            # resume it for four more steps: it finishes and evaluates
            page.fill("#resume-steps", str(stopped + 4))
            page.click("#resume")
            page.wait_for_selector("#message:has-text('queued: adaptkit run')")
            page.wait_for_selector("#state [data-state=finished]")
            assert step(page) == stopped + 4 and page.inner_text("#total") == str(stopped + 4)
            page.wait_for_selector("#report:not([hidden])")
            report = page.frame_locator("#report")
            assert report.locator("h1").inner_text().startswith("adaptkit")
            assert page.locator("table.figures").inner_text().count("embedded_probes") >= 1

            # export, through adaptkit export's code
            page.select_option("#export-format", "kohya")
            page.click("#export")
            page.wait_for_selector("#message:has-text('wrote')")
            exported = Path(page.inner_text("#message").removeprefix("wrote "))
            assert exported.parent == tmp_path / "runs" / "watched" / "exports" and exported.stat().st_size > 0

            # the runs page lists it, finished, with its figures
            page.goto(url)
            row = page.locator('tr[data-run="watched"]')
            assert row.locator("[data-state]").get_attribute("data-state") == "finished"
            assert re.search(r"target_style [+-]", row.inner_text())
            assert f"{stopped + 4}/{stopped + 4}" in row.inner_text()
        finally:
            browser.close()
    assert time.monotonic() - started < 240
