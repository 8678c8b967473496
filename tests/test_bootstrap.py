"""Paired bootstrap over prompts: coverage in simulation, pairing, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from adaptkit.evaluation.bootstrap import mean_ci, paired_figure, statistic_ci


def _simulate(rng: np.random.Generator, n_prompts: int, seeds: int, true_mean: float):
    """Per-prompt effects (the between-prompt variation) plus per-seed noise."""
    effect = true_mean + rng.normal(0.0, 1.0, n_prompts)
    values = (effect[:, None] + rng.normal(0.0, 0.5, (n_prompts, seeds))).ravel()
    groups = np.repeat(np.arange(n_prompts), seeds).tolist()
    return values, groups


def test_ci_covers_known_mean_in_about_95_percent_of_repetitions():
    rng = np.random.default_rng(1234)
    true_mean, reps, hits = 0.3, 200, 0
    for r in range(reps):
        values, groups = _simulate(rng, n_prompts=40, seeds=3, true_mean=true_mean)
        _, low, high = mean_ci(values, groups, n_resamples=500, seed=r)
        hits += low <= true_mean <= high
    coverage = hits / reps
    assert 0.90 <= coverage <= 0.99, coverage


def test_resampling_by_pair_instead_of_prompt_would_undercover():
    """Seeds of one prompt are correlated: a pair-level bootstrap is too narrow, ours is not."""
    rng = np.random.default_rng(7)
    values, groups = _simulate(rng, n_prompts=30, seeds=8, true_mean=0.0)
    _, lo_prompt, hi_prompt = mean_ci(values, groups, n_resamples=1000)
    _, lo_pair, hi_pair = mean_ci(values, list(range(len(values))), n_resamples=1000)
    assert hi_prompt - lo_prompt > 1.5 * (hi_pair - lo_pair)


def test_seeded_and_point_estimate_is_the_mean():
    values, groups = [1.0, 2.0, 3.0, 10.0], ["a", "a", "b", "c"]
    first = mean_ci(values, groups, seed=3)
    assert first == mean_ci(values, groups, seed=3)
    assert first[0] == pytest.approx(4.0)
    assert first[1] <= first[0] <= first[2]


def test_constant_values_give_a_zero_width_interval():
    assert mean_ci([0.5] * 6, list("aabbcc")) == pytest.approx((0.5, 0.5, 0.5))


def test_paired_figure_keeps_pairs_together():
    """A constant shift adapted = base + 1 has a zero-width CI however much base varies."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 5, 20)
    fig = paired_figure("m", "gain", base, base + 1.0, [f"p{i // 2}" for i in range(20)], "d")
    assert (fig.value, fig.ci_low, fig.ci_high) == pytest.approx((1.0, 1.0, 1.0))
    assert fig.n == 10
    assert fig.adapted - fig.base == pytest.approx(1.0)


def test_statistic_ci_resamples_whole_prompts():
    groups = ["a", "a", "b", "b"]
    seen = []

    def stat(idx: np.ndarray) -> float:
        seen.append(sorted(idx.tolist()))
        return float(len(idx))

    value, low, high = statistic_ci(stat, groups, n_resamples=50)
    assert value == 4.0 and low == high == 4.0
    for idx in seen:
        assert idx.count(0) == idx.count(1) and idx.count(2) == idx.count(3)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], ["a"])
