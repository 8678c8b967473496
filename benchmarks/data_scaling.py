"""How time to the first step and peak memory grow with the dataset (issue 19's data item).

For each size N (default 1 000, 10 000 and 100 000), N synthetic 64 px images with captions are
written as an ``imagefolder`` (``metadata.jsonl``), or with ``--layout shards`` copied from it into
WebDataset tar shards of 1 000 (the ``shards`` adapter), then ``adaptkit run`` trains the tiny test
model on them for 2 steps, in a fresh process with its own latent cache folder (a cold cache). Measured: the
wall time from the process start to its first logged step, the whole run, and the process's peak RSS.
The exponents are the slopes of log(figure) against log(N) between consecutive sizes (1 = linear).

    python benchmarks/data_scaling.py [--sizes 1000,10000,100000] [--layout imagefolder|shards]
                                      [--bucketing] [--work /tmp/data-scaling] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RECIPE = """
[run]
name = "scaling-{n}"
output_dir = "{work}/runs"
[model]
base = "testing:tiny-sd"
[data]
adapter = "{adapter}"
resolution = 64
bucketing = {bucketing}
cache_dir = "{work}/cache-{adapter}-{n}"
[data.options]
source = "{folder}"
[method]
name = "lora"
[method.options]
rank = 4
alpha = 4
[train]
steps = 2
batch_size = 4
log_every = 1
seed = 0
[sample]
prompts = []
"""

#: Runs ``adaptkit run`` and prints the child's peak RSS (KiB) and when its first step line came.
MEASURE = """
import resource, subprocess, sys, time
started = time.monotonic()
first = None
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for line in child.stdout:
    if first is None and line.startswith("step 1/"):
        first = time.monotonic() - started
child.wait()
print(child.returncode, first, time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def write_images(folder: Path, n: int) -> None:
    """``n`` distinct 64 px PNGs (a colour and a square's place from the index) with one caption each."""
    from PIL import Image, ImageDraw

    if (folder / "metadata.jsonl").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "gray"]
    with (folder / "metadata.jsonl").open("w", encoding="utf-8") as metadata:
        for i in range(n):
            image = Image.new("RGB", (64, 64), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
            x, y = (i // 7) % 48, (i // 11) % 48
            ImageDraw.Draw(image).rectangle((x, y, x + 16, y + 16), fill=(255 - (i % 256), i % 199, 128))
            name = f"{i:06d}.png"
            image.save(folder / name)
            caption = f"a {colours[i % len(colours)]} square, picture {i}"
            metadata.write(json.dumps({"file_name": name, "text": caption}) + "\n")


def write_shards(images: Path, folder: Path, per_shard: int = 1000) -> None:
    """The imagefolder ``images`` as tar shards of ``per_shard`` (each PNG with a ``.json`` caption)."""
    from adaptkit.data.export import write_tar_shards

    if folder.is_dir():
        return
    rows = [json.loads(line) for line in (images / "metadata.jsonl").read_text().splitlines()]
    samples = (((images / row["file_name"]).read_bytes(), {"caption": row["text"]}) for row in rows)
    write_tar_shards(samples, folder, per_shard)


def measure(n: int, work: Path, layout: str = "imagefolder", bucketing: bool = False) -> dict[str, float | int]:
    folder = work / f"images-{n}"
    started = time.monotonic()
    write_images(folder, n)
    if layout == "shards":
        write_shards(folder, work / f"shards-{n}")
        folder = work / f"shards-{n}"
    written = time.monotonic() - started
    recipe = work / f"scaling-{n}.toml"
    adapter = "shards" if layout == "shards" else "imagefolder"
    recipe.write_text(RECIPE.format(n=n, work=work, folder=folder, adapter=adapter, bucketing=str(bucketing).lower()))
    command = [sys.executable, "-m", "adaptkit.cli", "run", str(recipe), "--no-progress", "--overwrite"]
    for cold in (work / f"hf-{n}", work / f"cache-{adapter}-{n}"):  # a cold datasets cache and latent cache
        shutil.rmtree(cold, ignore_errors=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(work / f"hf-{n}"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env)
    code, first, total, rss_kib = done.stdout.split()[-4:]
    if code != "0" or first == "None":
        raise SystemExit(f"data_scaling: the run on {n} images failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return {
        "images": n,
        "write_images_s": round(written, 1),
        "time_to_first_step_s": round(float(first), 1),
        "whole_run_s": round(float(total), 1),
        "peak_rss_mb": round(int(rss_kib) / 1024),
    }


def exponents(rows: list[dict], figure: str) -> list[float]:
    """The slope of log(figure) against log(images) between consecutive sizes."""
    return [
        round(math.log(b[figure] / a[figure]) / math.log(b["images"] / a["images"]), 2)
        for a, b in zip(rows, rows[1:])
        if a[figure] > 0 and b[figure] > 0
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--layout", choices=("imagefolder", "shards"), default="imagefolder")
    parser.add_argument("--bucketing", action="store_true", help="with [data] bucketing = true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/data-scaling"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(measure(n, args.work.resolve(), args.layout, args.bucketing))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "layout": args.layout,
        "bucketing": args.bucketing,
        "rows": rows,
        "exponent_time_to_first_step": exponents(rows, "time_to_first_step_s"),
        "exponent_peak_rss": exponents(rows, "peak_rss_mb"),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
