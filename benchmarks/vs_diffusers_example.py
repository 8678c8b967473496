"""adaptkit against diffusers' ``train_text_to_image_lora.py`` on the same model, data and flags.

Both tools train LoRA r=4 (alpha 4) on the attention projections of an SD v1.5-architecture UNet with
random weights, saved once as a diffusers folder that both load; on the same synthetic images at
``--resolution`` (center crop, no flip), batch 1, learning rate 1e-4 constant, AdamW, fp32, gradient
checkpointing, seed 0, ``--threads`` threads, no sampling or validation, one save at the end. Each run
is a fresh process with a fresh ``HF_HOME`` and a cold adaptkit cache; adaptkit also reruns the
10-step recipe on its warm cache, which is what a second try of the same folder costs.

Every optimizer step is clocked by ``step_clock.py`` (the same hook in both tools). Reported per run:
time to first step (process start → end of step 1), whole-run time (process start → exit) and the
steady step: the median step after every image has been drawn once (so adaptkit's first-draw encoding
is over and diffusers encodes every step, as always). The bare UNet forward + backward with the same
flags comes from ``cached_step_breakdown_sd15.py --unet-only``, measured before and after the runs.
Runs alternate between the tools so a drift in the machine's speed falls on both. Usage:

    python benchmarks/vs_diffusers_example.py --resolution 512 --steps 10 100 \\
        --json benchmarks/results/vs-diffusers-512.json

The script diffusers publishes is in ``benchmarks/third_party/``. torchvision (which the example
imports) is installed into the work folder with ``pip --no-deps`` when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "third_party" / "diffusers_train_text_to_image_lora.py"
CLOCK = HERE / "step_clock.py"
BARE = HERE / "cached_step_breakdown_sd15.py"

#: The item-5 targets of issue 21, as (figure, ratio ≤).
TARGETS = {
    "steady step / bare UNet step": 1.05,
    "time to first step / diffusers'": 1.1,
    "whole run / diffusers' (10 steps)": 1.0,
    "whole run / diffusers' (100 steps)": 0.8,
}


def prepare(workdir: Path, resolution: int, images: int) -> tuple[Path, Path]:
    """The saved random SD v1.5 base and an imagefolder of ``images`` captioned images (made once)."""
    from adaptkit.bench.measure import write_synthetic_images
    from adaptkit.testing.sd15 import save_sd15_random_pipeline

    base = workdir / "sd15-random"
    if not (base / "model_index.json").is_file():
        save_sd15_random_pipeline(base)
    folder = workdir / f"images-{resolution}-{images}"
    if not (folder / "metadata.jsonl").is_file():
        write_synthetic_images(folder, resolution, images)
        rows = [
            {"file_name": png.name, "text": png.with_suffix(".txt").read_text(encoding="utf-8")}
            for png in sorted(folder.glob("*.png"))
        ]
        (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return base, folder


def torchvision_path(workdir: Path) -> Path | None:
    """A folder to put on ``PYTHONPATH`` for the example's torchvision, or None when it is installed."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or a wheel whose ops cannot load: install a private copy
        pass
    else:
        return None
    import torch

    target = workdir / "torchvision"
    if not (target / "torchvision").is_dir():
        minor = int(torch.__version__.split(".")[1])
        wheel = f"torchvision==0.{minor + 15}.0"  # torchvision 0.N+15 pairs with torch 2.N
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel], check=True
        )
    return target


def adaptkit_recipe(path: Path, name: str, base: Path, images: Path, resolution: int, steps: int, runs: Path) -> Path:
    """The recipe that asks adaptkit for what the example's flags ask diffusers for."""
    path.write_text(
        f"""[run]
name = "{name}"
output_dir = "{runs}"

[model]
base = "{base}"

[data]
adapter = "imagefolder"
resolution = {resolution}
center_crop = true
[data.options]
source = "{images}"

[method]
name = "lora"
[method.options]
rank = 4
alpha = 4

[train]
steps = {steps}
batch_size = 1
learning_rate = 1e-4
lr_scheduler = "constant"
mixed_precision = "no"
gradient_checkpointing = true
seed = 0
""",
        encoding="utf-8",
    )
    return path


def timed_run(label: str, command: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Run ``command`` under the step clock; its start, first step, exit and every step time."""
    times = workdir / f"{label}.steps.json"
    log = workdir / f"{label}.log"
    record = workdir / f"{label}.run.json"  # kept, so a failure later loses no run
    print(f"-- {label}", flush=True)
    started = time.time()
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(
            [sys.executable, str(CLOCK), str(times), *command], env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{label} failed (exit {done.returncode}); its output: {log}")
    steps = json.loads(times.read_text(encoding="utf-8"))["steps"]
    run = {"label": label, "started": started, "ended": ended, "steps": steps}
    record.write_text(json.dumps(run) + "\n", encoding="utf-8")
    return run


def figures(run: dict[str, Any], images: int) -> dict[str, Any]:
    """Time to first step, whole-run time and the steady step (median after every image was drawn once)."""
    steps = run["steps"]
    intervals = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    steady = intervals[images:]  # interval i ends at step i + 2: steps after the first epoch
    return {
        "steps": len(steps),
        "time_to_first_step_s": round(steps[0] - run["started"], 2),
        "whole_run_s": round(run["ended"] - run["started"], 2),
        "steady_step_s": round(statistics.median(steady), 3) if steady else None,
        "mean_step_s": round((steps[-1] - steps[0]) / max(1, len(steps) - 1), 3),
    }


def bare_unet_step(resolution: int, threads: int, env: dict[str, str]) -> float:
    """The median bare UNet LoRA forward + backward (gradient checkpointing, fp32), in a fresh process."""
    command = [sys.executable, str(BARE), "--threads", str(threads), "--resolution", str(resolution)]
    done = subprocess.run(
        [*command, "--gradient-checkpointing", "--unet-only"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["unet_lora_step_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/adaptkit-vs-diffusers"))
    parser.add_argument("--json", type=Path, help="write every figure and step time here")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    base, images = prepare(args.workdir, args.resolution, args.images)
    extra_path = torchvision_path(args.workdir)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ACCELERATE_MIXED_PRECISION="no")

    def fresh_env(label: str, cache: str | None = None) -> dict[str, str]:
        """The environment of run ``label``: its own empty ``HF_HOME`` and latent cache (``cache``: the
        warm cache another run left)."""
        for folder in (args.workdir / "hf" / label, args.workdir / "out" / label, args.workdir / "cache" / label):
            shutil.rmtree(folder, ignore_errors=True)  # left by an earlier invocation: every run starts cold
        run_env = {**env, "HF_HOME": str(args.workdir / "hf" / label)}
        run_env["ADAPTKIT_CACHE_DIR"] = str(args.workdir / "cache" / (cache or label))
        if extra_path is not None:
            run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
        return run_env

    tag = f"{args.resolution}px"
    report: dict[str, Any] = {
        "config": {**{k: str(v) for k, v in vars(args).items()}, "torch_threads": args.threads},
        "bare_unet_step_s": [bare_unet_step(args.resolution, args.threads, env)],
        "runs": {},
    }
    for steps in args.steps:
        diffusers_label, adaptkit_label = f"diffusers-{tag}-{steps}", f"adaptkit-{tag}-{steps}"
        example = [
            str(EXAMPLE),
            f"--pretrained_model_name_or_path={base}",
            f"--train_data_dir={images}",
            f"--resolution={args.resolution}",
            "--center_crop",
            "--train_batch_size=1",
            f"--max_train_steps={steps}",
            "--learning_rate=1e-4",
            "--lr_scheduler=constant",
            "--lr_warmup_steps=0",
            "--gradient_checkpointing",
            "--mixed_precision=no",
            "--rank=4",
            "--seed=0",
            "--checkpointing_steps=1000000",
            f"--output_dir={args.workdir / 'out' / diffusers_label}",
        ]
        report["runs"][diffusers_label] = timed_run(diffusers_label, example, fresh_env(diffusers_label), args.workdir)
        recipe = adaptkit_recipe(
            args.workdir / f"{adaptkit_label}.toml",
            adaptkit_label,
            base,
            images,
            args.resolution,
            steps,
            args.workdir / "runs",
        )
        command = ["-m", "adaptkit.cli", "run", str(recipe), "--overwrite", "--no-progress"]
        report["runs"][adaptkit_label] = timed_run(adaptkit_label, command, fresh_env(adaptkit_label), args.workdir)
        if steps == min(args.steps):
            rerun = f"{adaptkit_label}-rerun"
            warm = fresh_env(rerun, cache=adaptkit_label)
            report["runs"][rerun] = timed_run(rerun, command, warm, args.workdir)
    report["bare_unet_step_s"].append(bare_unet_step(args.resolution, args.threads, env))

    summary = {label: figures(run, args.images) for label, run in report["runs"].items()}
    report["summary"] = summary
    report["targets"] = judge(summary, report["bare_unet_step_s"], tag, args.steps)
    print(render(summary, report["targets"], report["bare_unet_step_s"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def judge(summary: dict[str, dict[str, Any]], bare: list[float], tag: str, step_counts: list[int]) -> list[dict]:
    """Each item-5 target's measured ratio, or None where the runs needed were not made."""
    bare_s = statistics.median(bare)
    longest = max(step_counts)
    steady = summary[f"adaptkit-{tag}-{longest}"]["steady_step_s"]
    shortest = min(step_counts)
    ratios = {
        "steady step / bare UNet step": steady / bare_s if steady else None,
        "time to first step / diffusers'": summary[f"adaptkit-{tag}-{shortest}"]["time_to_first_step_s"]
        / summary[f"diffusers-{tag}-{shortest}"]["time_to_first_step_s"],
    }
    for steps in (10, 100):
        if steps in step_counts:
            ratios[f"whole run / diffusers' ({steps} steps)"] = (
                summary[f"adaptkit-{tag}-{steps}"]["whole_run_s"] / summary[f"diffusers-{tag}-{steps}"]["whole_run_s"]
            )
    return [
        {"target": name, "at_most": limit, "measured": None if ratios.get(name) is None else round(ratios[name], 3)}
        for name, limit in TARGETS.items()
    ]


def render(summary: dict[str, dict[str, Any]], targets: list[dict], bare: list[float]) -> str:
    """The runs and the targets as Markdown tables."""
    lines = [
        "| run | steps | time to first step s | steady step s | mean step s | whole run s |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in summary.items():
        lines.append(
            f"| `{label}` | {row['steps']} | {row['time_to_first_step_s']} | {row['steady_step_s'] or '–'} "
            f"| {row['mean_step_s']} | {row['whole_run_s']} |"
        )
    lines += ["", f"bare UNet LoRA forward + backward (before, after): {bare} s", ""]
    lines += ["| target | at most | measured | met? |", "|---|---|---|---|"]
    for row in targets:
        measured = row["measured"]
        met = "not measured" if measured is None else ("yes" if measured <= row["at_most"] else "**no**")
        lines.append(f"| {row['target']} | {row['at_most']} | {measured if measured is not None else '–'} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
