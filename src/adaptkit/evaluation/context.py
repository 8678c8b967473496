"""The types evaluation metrics work on: paired generations in, figures with confidence intervals out.

A :class:`adaptkit.Metric` receives one :class:`EvalContext` and returns a list of
:class:`Figure`. Generation (the ``eval`` command) builds the context; metrics never generate.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from adaptkit.recipe import PromptSetName

if TYPE_CHECKING:
    import torch
    from PIL import Image

#: The prompt-set names a pair can belong to.
PROMPT_SETS: tuple[str, ...] = get_args(PromptSetName)


@dataclass(frozen=True)
class EvalPairs:
    """Paired generations: pair ``i`` used the same prompt, seed and sampler for base and adapted.

    ``sets[i]`` names the prompt set of pair ``i`` (one of :data:`PROMPT_SETS`). Several pairs
    may share a prompt (one per seed); confidence intervals resample prompts, not pairs.
    """

    prompts: list[str]
    sets: list[str]
    seeds: list[int]
    base: list["Image.Image"]
    adapted: list["Image.Image"]

    def __post_init__(self) -> None:
        lengths = {len(self.prompts), len(self.sets), len(self.seeds), len(self.base), len(self.adapted)}
        if len(lengths) != 1:
            raise ValueError(
                "EvalPairs: prompts, sets, seeds, base and adapted must have one length, got "
                f"{len(self.prompts)}, {len(self.sets)}, {len(self.seeds)}, {len(self.base)}, {len(self.adapted)}"
            )

    def __len__(self) -> int:
        return len(self.prompts)

    def indices(self, sets: str | Collection[str] | None = None) -> list[int]:
        """Indices of the pairs in the prompt set ``sets`` or any of several (all pairs when ``None``)."""
        wanted = {sets} if isinstance(sets, str) else sets
        return [i for i, s in enumerate(self.sets) if wanted is None or s in wanted]

    def subset(self, indices: list[int]) -> "EvalPairs":
        """The pairs at ``indices``, in that order."""
        return EvalPairs(
            prompts=[self.prompts[i] for i in indices],
            sets=[self.sets[i] for i in indices],
            seeds=[self.seeds[i] for i in indices],
            base=[self.base[i] for i in indices],
            adapted=[self.adapted[i] for i in indices],
        )


@dataclass(frozen=True)
class EvalContext:
    """Everything a metric may use for one evaluation.

    ``references`` are held-out real images of the style (may be empty); ``style`` is the embedded
    style name when the dataset is the embedded world; ``options`` is this metric's table from the
    recipe's ``[eval]`` section (e.g. ``[eval.style] model = "/path"``).
    """

    pairs: EvalPairs
    references: list["Image.Image"]
    style: str | None
    device: "torch.device"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One reported number with its paired-bootstrap 95% confidence interval over prompts.

    ``value`` is the headline (for paired metrics, adapted − base); ``base`` and ``adapted`` are
    the two sides when the figure is a difference. ``n`` counts the prompts it is computed over.
    """

    metric: str
    name: str
    value: float
    ci_low: float
    ci_high: float
    higher_is_better: bool
    n: int
    description: str
    base: float | None = None
    adapted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``eval/metrics.json``)."""
        return {
            "metric": self.metric,
            "name": self.name,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "higher_is_better": self.higher_is_better,
            "n": self.n,
            "description": self.description,
            "base": self.base,
            "adapted": self.adapted,
        }


def find_figure(figures: Iterable[Figure], metric: str, name: str | None = None) -> Figure | None:
    """The first of ``figures`` from ``metric`` (named ``name`` when given), else ``None``."""
    return next((f for f in figures if f.metric == metric and name in (None, f.name)), None)


class MetricUnavailable(Exception):
    """One line: which model is missing and how to provide a local copy.

    Raised by a metric that cannot run here; the evaluation reports the line and runs the others.
    """


__all__ = ["PROMPT_SETS", "PromptSetName", "EvalPairs", "EvalContext", "Figure", "find_figure", "MetricUnavailable"]
