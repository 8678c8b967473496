"""Per-step caption rules for tag-style captions (``"1girl, red hair, smiling"``), as kohya's sd-scripts
has them: ``shuffle_tags`` shuffles the comma-separated tags after the first ``keep_tokens`` (a trigger
word stays first), ``tag_dropout`` drops each of those tags with that probability. Both draw from the
step's caption RNG, so a resumed run draws the same captions; a caption changes every step, so the text
cache is off for them (``cache_text = true`` is refused)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from adaptkit.data.pipeline import choose_caption

if TYPE_CHECKING:
    from adaptkit.recipe import DataSection

Chooser = Callable[[Sequence[str], random.Random], str]


def varies_per_step(data: "DataSection") -> bool:
    """Whether ``data``'s tag rules change a caption from one step to the next."""
    return data.shuffle_tags or data.tag_dropout > 0


def apply_tag_rules(caption: str, rng: random.Random, keep_tokens: int, shuffle: bool, dropout: float) -> str:
    """``caption``'s tags after the first ``keep_tokens``, shuffled and/or dropped; joined by ``", "``."""
    tags = [tag.strip() for tag in caption.split(",") if tag.strip()]
    kept, rest = tags[:keep_tokens], tags[keep_tokens:]
    if shuffle:
        rng.shuffle(rest)
    if dropout > 0:
        rest = [tag for tag in rest if rng.random() >= dropout]
    return ", ".join(kept + rest)


def caption_chooser(data: "DataSection") -> Chooser:
    """How a training step picks its caption: one of the example's, then the tag rules when set."""
    if not varies_per_step(data):
        return choose_caption

    def choose(captions: Sequence[str], rng: random.Random) -> str:
        return apply_tag_rules(
            choose_caption(captions, rng), rng, data.keep_tokens, data.shuffle_tags, data.tag_dropout
        )

    return choose
