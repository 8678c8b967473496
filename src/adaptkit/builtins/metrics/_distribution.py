"""Distance between the generated images and the style references in CLIP space, base vs adapted.

Shared by ``kid`` and ``cmmd``: both are kernel MMDs, so the kernel matrices are computed once and
each bootstrap replicate (prompts resampled with all their seeds) indexes into them.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from adaptkit.component import Metric
from adaptkit.evaluation.bootstrap import statistic_ci
from adaptkit.evaluation.context import EvalContext, Figure

from ._common import EncoderOptions, encoder, references, selected_pairs


class DistributionMetric(Metric):
    """A kernel distance of generated images to the references; the figure is adapted − base
    (negative: the adapted model's images are closer to the style), with both sides reported."""

    options: EncoderOptions
    #: One line describing the distance, used in the figure's description.
    what: ClassVar[str]

    @abstractmethod
    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The kernel matrix between rows of ``x`` and rows of ``y``."""

    @abstractmethod
    def distance(self, kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, rng: np.random.Generator) -> float:
        """The distance from kernel matrices of a generated set (x) and the references (y)."""

    def compute(self, context: EvalContext) -> list[Figure]:
        o = self.options
        refs = references(context, self.name, minimum=2)
        pairs = selected_pairs(context, self.name, o.sets)
        enc = encoder(context, self.name, o.model, o.batch_size)
        y = enc.encode_images(refs).double().numpy()
        kyy = self.kernel(y, y)
        sides = {}
        for side, images in (("base", pairs.base), ("adapted", pairs.adapted)):
            x = enc.encode_images(images).double().numpy()
            sides[side] = (self.kernel(x, x), self.kernel(x, y))

        def one(side: str, idx: np.ndarray) -> float:
            kxx, kxy = sides[side]
            return self.distance(kxx[np.ix_(idx, idx)], kyy, kxy[idx], np.random.default_rng(o.seed))

        everyone = np.arange(len(pairs))
        base, adapted = one("base", everyone), one("adapted", everyone)
        value, low, high = statistic_ci(
            lambda idx: one("adapted", idx) - one("base", idx), pairs.prompts, o.n_resamples, o.seed
        )
        return [
            Figure(
                metric=self.name, name=self.name, value=value, ci_low=low, ci_high=high,
                higher_is_better=False, n=len(set(pairs.prompts)),
                description=f"{self.what} to {len(refs)} style references ({o.model}), adapted − base",
                base=base, adapted=adapted,
            )
        ]  # fmt: skip
