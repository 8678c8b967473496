"""EMA of the trainable weights: the masked update, with and without ``ema.foreach``."""

from __future__ import annotations

import pytest
import torch

from adaptkit.recipe import EmaSection
from adaptkit.training.ema import EmaWeights


def trained_params(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((4, 3), (5,), (2, 2, 2))]


def run_ema(foreach: bool, skips: list[float]) -> list[torch.Tensor]:
    params = trained_params(0)
    ema = EmaWeights(params, EmaSection(enabled=True, decay=0.9, foreach=foreach))
    for step, skipped in enumerate(skips):
        with torch.no_grad():
            for p in params:
                p.add_(0.1 * (step + 1))
        ema.step(torch.tensor(skipped))
    return [s.clone() for s in ema.model.shadow_params]


def test_foreach_update_equals_the_per_tensor_update(monkeypatch: pytest.MonkeyPatch) -> None:
    skips = [0.0, 1.0, 0.0, 0.0]
    plain = run_ema(False, skips)
    calls = []
    real = torch._foreach_sub
    monkeypatch.setattr(torch, "_foreach_sub", lambda *a: calls.append(1) or real(*a))
    fused = run_ema(True, skips)
    assert len(calls) == len(skips)  # ema.foreach takes the foreach path, once per step
    for a, b in zip(plain, fused):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    untouched = trained_params(0)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, untouched))  # it did average


def test_a_skipped_step_is_not_averaged_in() -> None:
    for foreach in (False, True):
        all_skipped = run_ema(foreach, [1.0, 1.0])
        for shadow, start in zip(all_skipped, trained_params(0)):
            torch.testing.assert_close(shadow, start)


@pytest.mark.parametrize("foreach", [False, True])
def test_update_builds_no_autograd_graph(foreach: bool) -> None:
    params = trained_params(1)
    ema = EmaWeights(params, EmaSection(enabled=True, decay=0.5, foreach=foreach))
    ema.step(torch.tensor(0.0))
    assert all(not s.requires_grad and s.grad_fn is None for s in ema.model.shadow_params)
