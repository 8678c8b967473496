#!/usr/bin/env bash
# The GPU check, one command for the first machine with a CUDA device (about 8 minutes on one H100/H200):
#   bash benchmarks/gpu-check.sh [OUT_DIR]        # default benchmarks/results/gpu-check
#   bash benchmarks/gpu-check.sh --dry-run        # list what it would run (works on a CPU)
# It runs the CUDA-marked tests (fp16 + xformers training, nf4-quantised LoRA training) and the
# bench's GPU scenarios (benchmarks/h100.toml: SD v1.5 architecture at 512 px, full and LoRA, bf16, compile on and off,
# SDPA and xformers, fused and 8-bit AdamW, EMA on device and offloaded, cached and not), and writes
# the test log, the bench JSON/CSV and the device's name into OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT="${1:-benchmarks/results/gpu-check}"

CUDA_TESTS=(
  "tests/test_training.py::test_xformers_and_fp16_train_on_gpu"
  "tests/test_quantize.py"
)
COMMANDS=(
  "python -c \"import torch; print(torch.cuda.get_device_name(0))\" > $OUT/device.txt"
  "python -m pytest -q -rs ${CUDA_TESTS[*]} 2>&1 | tee $OUT/cuda-tests.log"
  "adaptkit bench --file benchmarks/h100.toml --batch-size 32 --steps 20 --warmup 5 --json $OUT/bench.json --csv $OUT/bench.csv"
)

if [ "$DRY" = 1 ]; then
  printf 'would write into %s:\n' "$OUT"
  printf '  %s\n' "${COMMANDS[@]}"
  exit 0
fi
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device here (use --dry-run to list the commands)')"
mkdir -p "$OUT"
for command in "${COMMANDS[@]}"; do
  echo "== $command"
  bash -c "set -o pipefail; $command"
done
echo "gpu-check: results in $OUT"
