"""``cmmd``: CMMD (Jayasumana et al. 2024): MMD with a Gaussian RBF kernel on CLIP image embeddings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field

from adaptkit.hookspecs import hookimpl

from ._common import EncoderOptions
from ._distribution import DistributionMetric

#: The paper's bandwidth and scale (google-research/cmmd).
SIGMA = 10.0
SCALE = 1000.0


class CmmdOptions(EncoderOptions):
    """Options of ``cmmd``."""

    sigma: float = Field(SIGMA, gt=0, description="RBF bandwidth (the paper's 10).")


def rbf_kernel(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """``exp(−‖x − y‖² / (2σ²))`` between rows."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.exp(-np.maximum(sq, 0.0) / (2.0 * sigma**2))


def mmd_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """The paper's estimate ``SCALE · (mean Kxx + mean Kyy − 2 mean Kxy)`` (0 for identical sets)."""
    return float(SCALE * (kxx.mean() + kyy.mean() - 2.0 * kxy.mean()))


def cmmd(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA) -> float:
    """CMMD between embedding sets ``x`` and ``y`` (L2-normalised rows)."""
    return mmd_from_kernels(rbf_kernel(x, x, sigma), rbf_kernel(y, y, sigma), rbf_kernel(x, y, sigma))


class CmmdMetric(DistributionMetric):
    """CMMD of the generated images to the held-out style images (σ = 10, ×1000 as in the paper)."""

    name = "cmmd"
    description = "Distribution match: CMMD (CLIP embeddings, RBF kernel) to held-out style images, adapted − base."
    Options = CmmdOptions
    options: CmmdOptions
    what = "CMMD (RBF kernel σ=10 on CLIP image embeddings, ×1000)"

    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return rbf_kernel(x, y, self.options.sigma)

    def distance(self, kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, rng: np.random.Generator) -> float:
        return mmd_from_kernels(kxx, kyy, kxy)


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register ``cmmd``."""
    register(CmmdMetric)
