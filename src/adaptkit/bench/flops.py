"""FLOPs counted with ``torch.utils.flop_counter``, and the device's matmul FLOP/s measured now.

MFU = achieved FLOP/s ÷ the dense matmul FLOP/s of the same device and dtype, measured in the
same process (a timed ``torch.mm`` of a large square matrix); on CUDA also ÷ the datasheet peak.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")

#: Dense (no sparsity) datasheet peaks in TFLOP/s: {GPU name fragment: {precision: peak}}.
#: "no" = float32 training, which runs matmuls in TF32 on Ampere and later (adaptkit enables TF32).
DATASHEET_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "no": 494.7},
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0, "no": 417.5},
    "H100": {"bf16": 756.0, "fp16": 756.0, "no": 378.0},  # PCIe
    "A100": {"bf16": 312.0, "fp16": 312.0, "no": 156.0},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "no": 183.0},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "no": 82.6},
    "A10": {"bf16": 125.0, "fp16": 125.0, "no": 62.5},
    "V100": {"fp16": 125.0, "no": 15.7},
    "T4": {"fp16": 65.0, "no": 8.1},
}

PRECISION_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_flash_forward(query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def attention_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for the SDPA kernels torch's counter leaves out: in torch 2.13 the CPU flash kernel
    (``_scaled_dot_product_flash_attention_for_cpu`` and its backward) counts zero, about 0.44 TFLOP per
    512 px SD 1.5 image. They reuse torch's own SDPA formulas (on shapes)."""
    aten = torch.ops.aten
    formulas: dict[Any, Callable[..., int]] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_flash_backward
    return formulas


def count_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn`` under ``FlopCounterMode``; return its result and the FLOPs counted (matmul, conv, and
    attention on every device: :func:`attention_flop_formulas` fills torch's gaps)."""
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    missing = {op: f for op, f in attention_flop_formulas().items() if op not in flop_registry}
    counter = FlopCounterMode(display=False, custom_mapping=missing)
    with counter:
        result = fn()
    return result, int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 3) -> float:
    """Best FLOP/s of ``torch.mm`` of two ``size``×``size`` matrices (2·size³ FLOPs) on ``device`` in ``dtype``."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up (kernel selection, page faults)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def datasheet_flops_per_s(device: torch.device, precision: str) -> float | None:
    """The datasheet dense peak of this CUDA device for ``precision``, or None (CPU, unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in DATASHEET_TFLOPS.items():  # most specific first
        if fragment in name and precision in peaks:
            return peaks[precision] * 1e12
    return None


def mfu(flops_per_image: float, images_per_s: float, peak_flops_per_s: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s ÷ ``peak_flops_per_s`` (None without a peak)."""
    if not peak_flops_per_s or not flops_per_image or images_per_s != images_per_s:
        return None
    return flops_per_image * images_per_s / peak_flops_per_s


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside ``obj`` (nested dicts, lists and tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0
