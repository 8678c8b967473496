"""The logic of the CUDA-only fast paths, checked on the CPU (the GPU check runs them for real):
TF32, CUDA memory statistics, and the fp16 GradScaler's state through a checkpoint. Fused AdamW's
``found_inf`` skip is tested in test_faults.py, channels_last in test_fastpaths.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.training import checkpoint as ckpt
from adaptkit.training.fastpaths import enable_tf32
from adaptkit.training.telemetry import peak_memory_mb


@pytest.fixture
def tf32_flags():
    """TF32 flags restored after the test."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_allowed_for_matmuls_and_convolutions_on_cuda(monkeypatch, tf32_flags) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    enable_tf32()
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_tf32_is_left_alone_without_cuda(monkeypatch, tf32_flags) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    enable_tf32()
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_peak_memory_on_cuda_is_the_allocators_peak_in_mib(monkeypatch) -> None:
    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: asked.append(device) or 3 * 2**30)
    device = torch.device("cuda", 1)
    assert peak_memory_mb(device) == 3072.0 and asked == [device]


def test_peak_memory_on_cpu_is_this_processs_peak_rss() -> None:
    import resource

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_memory_mb(torch.device("cpu")) == pytest.approx(rss_mib, rel=0.05)


def test_the_fp16_grad_scalers_state_survives_a_checkpoint_and_a_safe_load(tmp_path: Path) -> None:
    """fp16 training keeps accelerate's ``GradScaler``; its state goes through the checkpoint's
    ``weights_only`` load. The CPU scaler has the same state as the CUDA one."""
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    for value in (1.0, float("inf"), 1.0):  # a step, a skipped (non-finite) step that halves the scale, a step
        optimizer.zero_grad()
        scaler.scale((weight * value).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
    path = ckpt.write_checkpoint(tmp_path, 3, {"w": weight.detach()}, {"scaler": scaler.state_dict()}, {})
    restored = torch.amp.GradScaler("cpu")
    restored.load_state_dict(ckpt.load_checkpoint(path).state["scaler"])
    assert restored.get_scale() == scaler.get_scale() == 2.0**11  # ×2, ÷2 (the skipped step), ×2
    assert restored.state_dict() == scaler.state_dict()
