"""The self-contained ``report.html``: embedded images, tables, loss curve, and a real browser rendering it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptkit.evaluation.context import EvalPairs, Figure
from adaptkit.evaluation.report import write_run_report
from adaptkit.evaluation.runner import EvalResult

PROMPTS = ["a red square", "a red square", "a blue circle", "a blue circle", "a green star", "a green star"]
SEEDS = [0, 1, 0, 1, 0, 1]
IMG_TAG = '<img src="data:image/png;base64,'


def _images(shade: int) -> list[Image.Image]:
    rng = np.random.default_rng(shade)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in PROMPTS]


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    run_dir = tmp_path / "my-run"
    run_dir.mkdir()
    rows = [{"step": s, "loss": 1.0 / s, "lr": 1e-4, "images_per_s": 9.0} for s in range(1, 6)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "result.json").write_text(json.dumps({"steps": 5, "wall_time_s": 12.5, "images_per_s": 9.25}))
    pairs = EvalPairs(PROMPTS, ["report"] * 6, SEEDS, _images(1), _images(2))
    figures = [Figure("style", "similarity", 0.12, 0.05, 0.2, True, 3, "CLIP image similarity", 0.3, 0.42)]
    settings = {"sampler": "ddim", "steps": 2, "guidance": 3.0, "method": "lora", "base_model": "tiny"}
    result = EvalResult(run_dir, "final", figures, {"kid": "kid: needs 2 reference images"}, pairs, settings)
    return write_run_report(result, run_dir / "eval" / "report.html")


def test_report_embeds_every_image_and_has_no_external_url(report: Path) -> None:
    page = report.read_text()
    # 3 prompts (first seed each) × 2 rows (base, adapted) + the loss curve
    assert page.count(IMG_TAG) == 3 * 2 + 1
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("seed 0") == 3 and "seed 1" not in page  # same seed in every column
    assert "+0.12 [+0.05, +0.2]" in page and "0.3" in page and "0.42" in page
    assert "unavailable: kid: needs 2 reference images" in page
    assert "12.5 s" in page and "9.25 images/s" in page


def test_report_grid_has_a_base_row_and_an_adapted_row(report: Path) -> None:
    page = report.read_text()
    grid = page.split('<table class="grid">')[1].split("</table>")[0]
    rows = grid.split("<tr>")[1:]
    assert [r.split("</th>")[0].removeprefix("<th>") for r in rows] == ["model", "base (tiny)", "adapted (lora, final)"]
    assert [r.count(IMG_TAG) for r in rows] == [0, 3, 3]


CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-loaded", ok + "/" + document.images.length);
});
</script></body>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_chromium_renders_the_report_with_every_image(report: Path, tmp_path: Path) -> None:
    chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400"]
    shot = tmp_path / "shot.png"
    subprocess.run([*chromium, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # not a blank page
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", CHECK_IMAGES))
    dom = subprocess.run(
        [*chromium, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-loaded="7/7"' in dom


def test_a_torn_last_metrics_line_still_gives_a_report_with_the_loss_curve(tmp_path: Path) -> None:
    """A run killed mid-write leaves ``{"step": 5, "lo`` (here also cut inside a UTF-8 character)."""
    from adaptkit.evaluation import report as report_module
    from adaptkit.interop import metadata

    run_dir = tmp_path / "killed-run"
    run_dir.mkdir()
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 5)]
    torn = "".join(json.dumps(r) + "\n" for r in rows).encode() + b'{"step": 5, "lo' + "é".encode()[:1]
    (run_dir / "metrics.jsonl").write_bytes(torn)
    assert [row["step"] for row in metadata.metric_rows(run_dir)] == [1, 2, 3, 4]
    assert report_module.loss_curve(run_dir / "metrics.jsonl") is not None
    pairs = EvalPairs(PROMPTS, ["report"] * 6, SEEDS, _images(1), _images(2))
    settings = {"sampler": "ddim", "steps": 2, "guidance": 3.0, "method": "lora", "base_model": "tiny"}
    page = write_run_report(EvalResult(run_dir, "step-4", [], {}, pairs, settings), run_dir / "report.html").read_text()
    assert page.count(IMG_TAG) == 3 * 2 + 1  # the grid and the loss curve of the 4 whole rows
    assert "No loss logged." not in page and "No result.json" in page


def test_loss_curve_leaves_out_rows_without_a_numeric_step_and_loss(tmp_path: Path) -> None:
    from adaptkit.evaluation.report import loss_curve

    path = tmp_path / "metrics.jsonl"
    path.write_text('[1, 2]\n{"step": "x", "loss": 1}\n{"step": 1, "loss": null}\n{"step": true, "loss": 1.0}\n')
    assert loss_curve(path) is None  # nothing plottable: no figure, and no matplotlib error
    path.write_text(path.read_text() + '{"step": 2, "loss": 0.5}\n')
    assert loss_curve(path) is not None
