#!/usr/bin/env bash
# adaptkit against diffusers' train_text_to_image_lora.py on this machine (issue 21, item 5): the whole
# protocol (10 and 100 steps) at 256 px, and 10 steps at 512 px; about 35 minutes on 2 CPU cores.
# Nothing else should run meanwhile: every figure is a wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/vs-diffusers
mkdir -p "$out"
python benchmarks/vs_diffusers_example.py --resolution 256 --steps 10 100 --workdir /tmp/adaptkit-vs-diffusers \
  --json "$out/vs-diffusers-256.json" 2>&1 | grep -v "Warning\|warn" | tee "$out/vs-diffusers-256.log"
python benchmarks/vs_diffusers_example.py --resolution 512 --steps 10 --workdir /tmp/adaptkit-vs-diffusers \
  --json "$out/vs-diffusers-512.json" 2>&1 | grep -v "Warning\|warn" | tee "$out/vs-diffusers-512.log"
