"""``adaptkit bench``: FLOP counting, step statistics, regression rule, scenario selection, and one quick run."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from adaptkit.bench.compare import compare_reports
from adaptkit.bench.flops import count_flops, matmul_flops_per_s, mfu, tensor_bytes
from adaptkit.bench.measure import step_figures
from adaptkit.bench.scenarios import (
    BASELINE,
    Scenario,
    full_matrix,
    load_scenario_file,
    one_factor_at_a_time,
    select,
    skip_reason,
)
from adaptkit.cli import main
from adaptkit.errors import UserError

SKIPPED = "lora/xformers/adamw/no/ema-none/nogc/cached"


def test_flop_count_of_a_linear_and_a_conv_is_exact():
    linear = torch.nn.Linear(64, 32)
    _, flops = count_flops(lambda: linear(torch.ones(8, 64)))
    assert flops == 2 * 8 * 64 * 32
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
    _, flops = count_flops(lambda: conv(torch.ones(1, 3, 16, 16)))
    assert flops == 2 * (8 * 16 * 16) * (3 * 3 * 3)


def test_flop_count_includes_the_backward_pass():
    linear = torch.nn.Linear(64, 32, bias=False)
    x = torch.ones(8, 64, requires_grad=True)
    _, flops = count_flops(lambda: linear(x).sum().backward())
    assert flops == 3 * 2 * 8 * 64 * 32  # forward, grad wrt input, grad wrt weight


def test_mfu_is_achieved_over_measured_peak():
    peak = matmul_flops_per_s(torch.device("cpu"), torch.float32, size=256, repeats=2)
    assert peak > 1e8
    assert mfu(1e9, 2.0, 4e9) == pytest.approx(0.5)
    assert mfu(1e9, 2.0, None) is None


def test_tensor_bytes_walks_optimizer_state():
    state = [{"step": torch.tensor(1.0), "exp_avg": torch.zeros(10), "exp_avg_sq": torch.zeros(10, dtype=torch.uint8)}]
    assert tensor_bytes(state) == 4 + 40 + 10


def test_step_figures_drop_warmup_and_take_the_median():
    figures = step_figures([0.0, 3.0, 3.5, 4.0, 4.6], warmup=1, images_per_step=2)
    assert figures["timed_steps"] == 3
    assert figures["step_s_p50"] == pytest.approx(0.5)
    assert figures["step_s_p95"] == pytest.approx(0.6)
    assert figures["images_per_s"] == pytest.approx(4.0)


def _report(p50: float, times: list[float], memory: float = 1000.0) -> dict:
    result = {"scenario": BASELINE.name, "status": "ok", "step_s_p50": p50, "step_times_s": times}
    return {"results": [result | {"peak_memory_mb": memory}]}


def test_compare_flags_a_2x_slowdown_and_not_a_1_percent_change():
    times = [1.0, 1.02, 0.98, 1.01, 0.99]
    old = _report(1.0, times)
    slow = compare_reports(old, _report(2.0, [2 * t for t in times]))
    assert [c.regression for c in slow if c.figure == "step_s_p50"] == [True]
    same = compare_reports(old, _report(1.01, [1.01 * t for t in times]))
    assert not any(c.regression for c in same)
    bigger = compare_reports(old, _report(1.0, times, memory=1200.0))
    assert [c.figure for c in bigger if c.regression] == ["peak_memory_mb"]


def test_scenario_sets_and_names():
    assert len(full_matrix()) == 3 * 2 * 2 * 3 * 3 * 2 * 2 * 2
    names = [s.name for s in one_factor_at_a_time()]
    assert names[0] == "lora/sdpa/adamw/no/ema-none/nogc/cached" and len(set(names)) == len(names)
    assert names[-1] == "lora/sdpa/adamw/no/ema-none/nogc/cached/compiled"
    assert skip_reason(Scenario(compile=True), "cpu").startswith("torch.compile is benched on CUDA only")
    assert [s.method for s in select(one_factor_at_a_time(), "full/*")] == ["full"]
    assert [s.cache for s in select(one_factor_at_a_time(), "*/uncached")] == [False]


def test_unknown_scenario_pattern_is_a_one_line_user_error(capsys):
    with pytest.raises(UserError) as info:
        select(one_factor_at_a_time(), "lora/flash/*")
    assert len(info.value.lines) == 1 and "lora/flash/*" in info.value.lines[0]
    assert main(["bench", "--quick", "--scenarios", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --scenarios: 'nope' matches no scenario")


def test_scenario_file_values_are_checked(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[scenario]]\nmethod = "full"\noptimizer = "sgd"\n')
    with pytest.raises(UserError, match=r"scenario 1: optimizer = 'sgd' is not valid \(valid: 'adamw', 'adamw8bit'\)"):
        load_scenario_file(path)


def test_skip_reasons_on_cpu():
    assert "CUDA" in skip_reason(Scenario(attention="xformers"), "cpu")
    assert "CUDA" in skip_reason(Scenario(precision="fp16"), "cpu")
    assert skip_reason(BASELINE, "cpu") is None


def rows_of(path):
    return list(csv.DictReader(path.open()))


def test_quick_bench_writes_finite_json_and_csv(tmp_path, capsys):
    out_json, out_csv = tmp_path / "bench.json", tmp_path / "bench.csv"
    args = ["bench", "--quick", "--scenarios", f"{BASELINE.name},{SKIPPED}", "--steps", "2", "--warmup", "1"]
    args += ["--matmul-size", "512", "--json", str(out_json), "--csv", str(out_csv), "--workdir", str(tmp_path / "w")]
    assert main(args) == 0
    report = json.loads(out_json.read_text())
    ran, skipped = report["results"]
    assert ran["status"] == "ok", ran
    for key in ("images_per_s", "step_s_p50", "step_s_p95", "peak_memory_mb", "flops_per_image", "matmul_flops_per_s"):
        assert math.isfinite(ran[key]) and ran[key] > 0, key
    assert ran["timed_steps"] == 2 and ran["step_s_p95"] >= ran["step_s_p50"]
    assert 0 < ran["mfu"] <= 1.5
    assert 0 <= ran["matmul_spread"] < 2 and 0 < ran["time_to_first_step_s"] < 600
    assert ran["time_to_first_step_s"] > ran["step_s_p50"]  # loading and caching come first
    assert float(rows_of(out_csv)[0]["time_to_first_step_s"]) == pytest.approx(ran["time_to_first_step_s"])
    assert BASELINE.cache and 0 < ran["cache_fill_ms_per_image"] < 60_000  # a cold fill: every image encoded
    assert float(rows_of(out_csv)[0]["cache_fill_ms_per_image"]) == pytest.approx(ran["cache_fill_ms_per_image"])
    assert ran["optimizer_state_bytes"] > 0 and ran["ema_accelerator_bytes"] == 0
    assert skipped["status"] == "skipped" and skipped["reason"] == "xformers needs a CUDA device"
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["scenario"] for r in rows] == [BASELINE.name, SKIPPED]
    assert float(rows[0]["images_per_s"]) == pytest.approx(ran["images_per_s"])
    assert rows[1]["reason"] == "xformers needs a CUDA device"
    assert "skipped: xformers needs a CUDA device" in capsys.readouterr().out


def test_family_sdxl_benches_the_tiny_sdxl_and_an_unbenchable_family_is_refused(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    args = ["bench", "--family", "sdxl", "--quick", "--scenarios", BASELINE.name, "--steps", "1", "--warmup", "1"]
    assert main([*args, "--matmul-size", "256", "--json", str(out_json), "--workdir", str(tmp_path / "w")]) == 0
    report = json.loads(out_json.read_text())
    assert "on testing:tiny-sdxl at 64 px" in capsys.readouterr().out
    (ran,) = report["results"]
    assert ran["status"] == "ok" and ran["flops_per_image"] > 0, ran
    assert main(["bench", "--family", "sd2", "--quick"]) == 2
    assert "--family = 'sd2': no random-weight bench model for it (valid: sd1, sdxl)" in capsys.readouterr().err


def test_attention_flops_are_counted_on_cpu_as_torchs_sdpa_formulas() -> None:
    """torch 2.13's counter misses the CPU flash kernel; ours counts it with torch's own SDPA formulas
    (forward 4·b·h·s_q·s_k·d, backward 2.5x that)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from adaptkit.bench.flops import count_flops

    b, h, s_q, s_k, d = 2, 3, 64, 40, 16
    q = torch.randn(b, h, s_q, d, requires_grad=True)
    k = torch.randn(b, h, s_k, d, requires_grad=True)
    v = torch.randn(b, h, s_k, d, requires_grad=True)

    def step():
        F.scaled_dot_product_attention(q, k, v).sum().backward()

    _, counted = count_flops(step)
    forward = 4 * b * h * s_q * s_k * d  # QK^T and attention @ V, 2 FLOPs per multiply-add
    assert counted == forward + 2 * forward + forward // 2  # backward: 5 matmuls of the same size
    bare = FlopCounterMode(display=False)
    with bare:
        step()
    assert bare.get_total_flops() < counted  # what torch's own counter gives (0 on the CPU kernel)


def test_the_gpu_check_lists_its_commands_on_a_cpu_and_refuses_to_run_there(tmp_path) -> None:
    import re
    import subprocess
    from pathlib import Path

    import torch

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "gpu-check.sh"
    dry = subprocess.run(["bash", str(script), "--dry-run", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert f"would write into {tmp_path}" in dry.stdout and not any(tmp_path.iterdir())
    assert "adaptkit bench --file benchmarks/h100.toml" in dry.stdout and (root / "benchmarks/h100.toml").is_file()
    for node in re.findall(r"tests/\S+\.py(?:::\w+)?", dry.stdout):  # every test it names exists
        path, _, name = node.partition("::")
        assert (root / path).is_file() and (not name or f"def {name}(" in (root / path).read_text()), node
    if not torch.cuda.is_available():
        real = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert real.returncode != 0 and real.stderr.strip().endswith(
            "no CUDA device here (use --dry-run to list the commands)"
        )
