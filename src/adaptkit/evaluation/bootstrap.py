"""Paired-bootstrap 95% confidence intervals over prompts.

Evaluation pairs share prompts (one pair per seed). A prompt is the unit of resampling: each
bootstrap replicate draws prompts with replacement and keeps *all* their pairs (seeds), so the
interval reflects the variation between prompts, and base and adapted stay paired. Percentile
intervals; seeded, so a figure is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
from pydantic import Field

from adaptkit.component import Options
from adaptkit.evaluation.context import PROMPT_SETS, Figure, PromptSetName

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95


class BootstrapOptions(Options):
    """Options every metric with paired-bootstrap intervals shares: the bootstrap and which prompt sets to score."""

    n_resamples: int = Field(DEFAULT_RESAMPLES, ge=10, description="Bootstrap resamples for the 95% CI.")
    seed: int = Field(DEFAULT_SEED, description="Seed of the bootstrap (and of KID's subsets).")
    sets: list[PromptSetName] | None = Field(
        None, description=f"Prompt sets to score ({', '.join(PROMPT_SETS)}); default: every pair."
    )


def group_indices(groups: Sequence[Hashable]) -> list[np.ndarray]:
    """Pair indices per distinct group (prompt), in order of first appearance."""
    order: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in order.values()]


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mean_ci(
    values: Sequence[float],
    groups: Sequence[Hashable],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)`` of per-pair ``values``, resampling ``groups`` (prompts) with replacement.

    The mean is over pairs (a prompt with more seeds weighs more, as in the point estimate).
    For a paired difference pass ``adapted − base`` per pair.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) != len(groups):
        raise ValueError(f"mean_ci: {len(x)} values but {len(groups)} groups")
    if len(x) == 0:
        raise ValueError("mean_ci: no values")
    parts = group_indices(groups)
    sums = np.array([x[p].sum() for p in parts])
    counts = np.array([len(p) for p in parts], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(parts), size=(n_resamples, len(parts)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    low, high = _percentiles(means, confidence)
    return float(x.mean()), low, high


def statistic_ci(
    statistic: Callable[[np.ndarray], float],
    groups: Sequence[Hashable],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)`` of a set statistic (e.g. KID) of the pairs, resampling prompts.

    ``statistic(indices)`` computes the figure from the pairs at ``indices`` (a resample may
    repeat a pair); the point value uses every pair once.
    """
    parts = group_indices(groups)
    if not parts:
        raise ValueError("statistic_ci: no pairs")
    value = float(statistic(np.concatenate(parts)))
    rng = np.random.default_rng(seed)
    samples = np.empty(n_resamples)
    for r in range(n_resamples):
        pick = rng.integers(0, len(parts), size=len(parts))
        samples[r] = statistic(np.concatenate([parts[k] for k in pick]))
    low, high = _percentiles(samples, confidence)
    return value, low, high


def paired_figure(
    metric: str,
    name: str,
    base: Sequence[float],
    adapted: Sequence[float],
    prompts: Sequence[str],
    description: str,
    higher_is_better: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Figure:
    """A :class:`Figure` of the paired difference ``adapted − base`` with its CI over prompts."""
    b = np.asarray(base, dtype=np.float64)
    a = np.asarray(adapted, dtype=np.float64)
    if b.shape != a.shape:
        raise ValueError(f"paired_figure: {b.shape} base values but {a.shape} adapted values")
    value, low, high = mean_ci(a - b, prompts, n_resamples, seed)
    return Figure(
        metric=metric,
        name=name,
        value=value,
        ci_low=low,
        ci_high=high,
        higher_is_better=higher_is_better,
        n=len(set(prompts)),
        description=description,
        base=float(b.mean()),
        adapted=float(a.mean()),
    )


def single_figure(
    metric: str,
    name: str,
    values: Sequence[float],
    prompts: Sequence[str],
    description: str,
    higher_is_better: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Figure:
    """A :class:`Figure` of the mean of per-pair ``values`` (one side only) with its CI over prompts."""
    value, low, high = mean_ci(values, prompts, n_resamples, seed)
    return Figure(metric, name, value, low, high, higher_is_better, len(set(prompts)), description)


__all__ = ["mean_ci", "statistic_ci", "paired_figure", "single_figure", "group_indices", "DEFAULT_RESAMPLES"]
