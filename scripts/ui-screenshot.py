#!/usr/bin/env python
"""Regenerate docs/images/ui-run.png: the run page of ``adaptkit ui`` after a short run on the embedded model.

    python scripts/ui-screenshot.py [--out docs/images/ui-run.png]

Trains offline on a CPU (a minute or three): starts ``adaptkit ui`` over a temporary runs folder, launches
the recipe below through the UI, waits for it to finish and be evaluated, then photographs its page with
headless Chromium (Debian's ``chromium``; Playwright drives it, no browser is downloaded).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the UI's process helpers, shared with its tests

from ui_helpers import get_json, post_json, ui_server, wait_for  # noqa: E402

RECIPE = """\
# a short LoRA on the embedded model, for the screenshot of its run page
[model]
base = "embedded:tiny-sd"

[data]
adapter = "embedded-styles"
resolution = 64
[data.options]
style = "ink"
count = 64

[method]
name = "lora"
[method.options]
rank = 8
alpha = 8

[train]
steps = 120
batch_size = 4
learning_rate = 5e-4
lr_scheduler = "constant_with_warmup"
lr_warmup_steps = 20
log_every = 2
seed = 0

[checkpoint]
every = 40
keep = 3

[sample]
sampler = "dpm-solver"
steps = 10
guidance = 5.0
every = 40
prompts = ["a large red triangle on a white background", "a small blue circle on a black background"]
seeds = [0, 1]

[eval]
metrics = ["embedded_probes"]
prompts = 8
seeds_per_prompt = 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "ui-run.png")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, ui_server(Path(folder) / "runs", Path(folder)) as (url, _):
        post_json(f"{url}/api/launch", {"name": "ink-lora", "toml": RECIPE}, url)
        finished = lambda: (get_json(f"{url}/api/runs/ink-lora") or {}).get("status", {})  # noqa: E731
        wait_for(lambda: finished().get("state") in ("finished", "failed") and finished().get("has_report"), 900,
                 "the run to finish and be evaluated", every=2)  # fmt: skip
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1180, "height": 1060}, device_scale_factor=1)
            page.goto(f"{url}/runs/ink-lora")
            page.wait_for_function("() => document.querySelectorAll('#samples img').length >= 3")
            page.wait_for_function("() => document.querySelector('#loss-chart polyline.loss')")
            page.wait_for_timeout(1500)  # the images decoded, the report framed
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
