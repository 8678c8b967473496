#!/usr/bin/env bash
# The embedded demo's sweep (README, "Sweeps"), and its evidence copied into one folder:
#   bash benchmarks/demo-sweep.sh [--collect-only] [WORK_DIR] [OUT_DIR]   # default /tmp/demo-sweep, benchmarks/results/demo-sweep
# It runs `adaptkit sweep recipes/demo.toml --space recipes/demo-space.toml` in WORK_DIR (about 30 minutes
# on 2 CPU cores; run it again to continue an interrupted sweep), then copies the report, the front plot,
# best.toml, the space, the log and every trial's figures (trials.json) into OUT_DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COLLECT_ONLY=0
if [ "${1:-}" = "--collect-only" ]; then COLLECT_ONLY=1; shift; fi
WORK="${1:-/tmp/demo-sweep}"
OUT="$(mkdir -p "${2:-$ROOT/benchmarks/results/demo-sweep}" && cd "${2:-$ROOT/benchmarks/results/demo-sweep}" && pwd)"
mkdir -p "$WORK"
cd "$WORK"
if [ "$COLLECT_ONLY" = 0 ]; then
  { time adaptkit sweep "$ROOT/recipes/demo.toml" --space "$ROOT/recipes/demo-space.toml"; } 2>&1 | tee "$OUT/sweep.log"
fi
SWEEP="runs/demo-sweep"
cp "$SWEEP/report.html" "$SWEEP/front.png" "$SWEEP/best.toml" "$SWEEP/space.toml" "$OUT/"
python - "$SWEEP/study.db" "$OUT/trials.json" <<'PY'
import json, sys
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="demo-sweep", storage=f"sqlite:///{sys.argv[1]}")
keep = ("folder", "style_gain", "style_gain_ci", "fidelity_loss", "fidelity_loss_ci", "adapter_scale", "seconds", "pruned_at", "baseline")
rows = [{"number": t.number, "state": t.state.name, "params": t.params, **{k: t.user_attrs[k] for k in keep if k in t.user_attrs}} for t in study.trials]
open(sys.argv[2], "w").write(json.dumps({"rule": study.user_attrs.get("rule"), "pruning": study.user_attrs.get("pruning"), "trials": rows}, indent=2) + "\n")
PY
echo "demo-sweep: evidence in $OUT"
