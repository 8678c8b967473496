"""The evaluation prompt sets: in-style, the original report's four, and a general set in categories.

- ``in-style``: the captions of the dataset's held-out ``eval`` split (see :mod:`adaptkit.data.holdout`;
  the embedded styles have their own held-out scenes), one per held-out image;
- ``report``: the four prompts of the original report's base-vs-fine-tuned comparison;
- ``general``: 120 prompts in six categories (objects, counting, colours, positions, people, text),
  shipped in ``evaluation/data/general_prompts.toml`` with their source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import tomllib

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.component import DatasetAdapter

#: The original report's four prompts (its before/after figure, left to right).
REPORT_PROMPTS: tuple[str, ...] = (
    "a photo of an astronaut riding a horse on mars",
    "a photo of a boy kissing with a girl",
    "a photo of a man shooting a gun",
    "a photo of a woman with light shed on her face",
)
REPORT_SOURCE = "the original report's base vs fine-tuned comparison (its four prompts)"
GENERAL_FILE = "general_prompts.toml"
CATEGORIES: tuple[str, ...] = ("objects", "counting", "colours", "positions", "people", "text")
SET_NAMES: tuple[str, ...] = ("in-style", "report", "general")


@dataclass(frozen=True)
class PromptSet:
    """Prompts of one set, each with its category (``""`` when the set has none), and where they come from."""

    name: str
    prompts: list[str]
    categories: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.prompts)

    def limit(self, count: int | None) -> "PromptSet":
        """At most ``count`` prompts, spread evenly over the set (so every category keeps a share)."""
        if count is None or count >= len(self.prompts):
            return self
        if count < 1:
            raise UserError(f"prompt set {self.name}: cannot take {count} prompts (at least 1)")
        picks = [round(i * len(self.prompts) / count) for i in range(count)]
        return PromptSet(self.name, [self.prompts[i] for i in picks], [self.categories[i] for i in picks], self.source)


def report_prompts() -> PromptSet:
    """The original report's four prompts."""
    return PromptSet("report", list(REPORT_PROMPTS), [""] * len(REPORT_PROMPTS), REPORT_SOURCE)


@cache
def _general() -> dict[str, Any]:
    text = resources.files("adaptkit.evaluation").joinpath("data", GENERAL_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def general_prompts(categories: list[str] | None = None) -> PromptSet:
    """The general set, or only ``categories`` of it (in :data:`CATEGORIES` order)."""
    data = _general()
    wanted = list(CATEGORIES) if categories is None else categories
    unknown = [c for c in wanted if c not in data["categories"]]
    if unknown:
        raise UserError(f"general prompts: unknown category {unknown[0]!r} (valid: {', '.join(CATEGORIES)})")
    prompts, cats = [], []
    for category in CATEGORIES:
        if category in wanted:
            prompts += data["categories"][category]
            cats += [category] * len(data["categories"][category])
    return PromptSet("general", prompts, cats, data["source"])


def in_style_prompts(adapter: "DatasetAdapter") -> PromptSet:
    """The first caption of every example of the dataset's held-out ``eval`` split (never trained on)."""
    held_out = adapter.load("eval")
    prompts = [held_out[i].captions[0] for i in range(len(held_out))]
    if not prompts:
        raise UserError(f"data: dataset {adapter.name} has an empty held-out 'eval' split")
    return PromptSet("in-style", prompts, [""] * len(prompts), f"captions of the held-out split of {adapter.name}")


def prompt_set(name: str, adapter: "DatasetAdapter | None" = None, count: int | None = None) -> PromptSet:
    """The prompt set called ``name`` (one of :data:`SET_NAMES`), at most ``count`` prompts."""
    if name == "report":
        chosen = report_prompts()
    elif name == "general":
        chosen = general_prompts()
    elif name == "in-style":
        if adapter is None:
            raise UserError("eval: the in-style prompt set needs the recipe's dataset")
        chosen = in_style_prompts(adapter)
    else:
        raise UserError(f"eval: unknown prompt set {name!r} (valid: {', '.join(SET_NAMES)})")
    return chosen.limit(count)


__all__ = [
    "PromptSet",
    "REPORT_PROMPTS",
    "CATEGORIES",
    "SET_NAMES",
    "report_prompts",
    "general_prompts",
    "in_style_prompts",
    "prompt_set",
]
