"""``kid``: Kernel Inception Distance (Bińkowski et al. 2018) computed on CLIP image embeddings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field

from adaptkit.hookspecs import hookimpl

from ._common import EncoderOptions
from ._distribution import DistributionMetric


class KidOptions(EncoderOptions):
    """Options of ``kid``."""

    subset_size: int = Field(1000, ge=2, description="Subset size; capped at the smaller of the two sets.")
    subsets: int = Field(50, ge=1, description="Random subsets the estimate is averaged over.")
    n_resamples: int = Field(200, ge=10, description="Bootstrap resamples for the 95% CI (each re-estimates KID).")


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's cubic kernel ``(x·y / d + 1)³``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def subset_size(n_x: int, n_y: int, requested: int) -> int:
    """The subset size actually used: never larger than either sample."""
    return max(0, min(requested, n_x, n_y))


def kid_from_kernels(
    kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, size: int, subsets: int, rng: np.random.Generator
) -> float:
    """Mean over ``subsets`` random subsets of the unbiased MMD² estimate (subset size capped)."""
    m = subset_size(kxx.shape[0], kyy.shape[0], size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side, got {kxx.shape[0]} and {kyy.shape[0]}")
    if m == kxx.shape[0] == kyy.shape[0]:
        subsets = 1  # every subset is the whole of both sets: one evaluation is exact
    xi = rng.permuted(np.tile(np.arange(kxx.shape[0]), (subsets, 1)), axis=1)[:, :m]  # without replacement
    yi = rng.permuted(np.tile(np.arange(kyy.shape[0]), (subsets, 1)), axis=1)[:, :m]
    a, b = kxx[xi[:, :, None], xi[:, None, :]], kyy[yi[:, :, None], yi[:, None, :]]
    diagonals = kxx[xi, xi].sum(1) + kyy[yi, yi].sum(1)
    within = (a.sum((1, 2)) + b.sum((1, 2)) - diagonals) / (m * (m - 1))
    across = kxy[xi[:, :, None], yi[:, None, :]].mean((1, 2))
    return float((within - 2.0 * across).mean())


def kid(x: np.ndarray, y: np.ndarray, size: int = 1000, subsets: int = 50, seed: int = 0) -> float:
    """KID between embedding sets ``x`` and ``y`` (rows)."""
    k = polynomial_kernel
    return kid_from_kernels(k(x, x), k(y, y), k(x, y), size, subsets, np.random.default_rng(seed))


class KidMetric(DistributionMetric):
    """KID of the generated images to the held-out style images, with the cubic polynomial kernel on
    CLIP image embeddings (no Inception network here); subsets never larger than either set."""

    name = "kid"
    description = "Distribution match: KID (CLIP embeddings) to held-out style images, adapted − base."
    Options = KidOptions
    options: KidOptions
    what = "KID (cubic kernel on CLIP image embeddings)"

    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return polynomial_kernel(x, y)

    def distance(self, kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, rng: np.random.Generator) -> float:
        return kid_from_kernels(kxx, kyy, kxy, self.options.subset_size, self.options.subsets, rng)


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register ``kid``."""
    register(KidMetric)
