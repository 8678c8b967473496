"""The deterministic held-out ``eval`` split of a dataset, chosen by example key.

An example is held out when a hash of its key falls below ``fraction`` (so the choice does not
depend on row order or on the other rows, and grows stably with the dataset); when no key does,
the one with the smallest hash is held out, so a small dataset still has one. Keys identify an
image (its content hash) or a group of rows (e.g. newyorker's ``contest_number``), so every row of
a held-out cartoon is held out together. ``"train"`` is everything else: training never sees them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from adaptkit.data.loading import SubsetDataset

EVAL = "eval"
#: Salt of the hash, so the held-out choice is independent of other uses of the keys.
SALT = "adaptkit-eval-split/"


def key_score(key: str) -> float:
    """A uniform number in [0, 1) from ``key`` (stable across runs and machines)."""
    return int(hashlib.sha256((SALT + key).encode()).hexdigest()[:12], 16) / 16**12


def held_out_keys(keys: list[str], fraction: float) -> set[str]:
    """The keys of the held-out split (empty when ``fraction`` is 0)."""
    if fraction <= 0 or not keys:
        return set()
    chosen = {k for k in keys if key_score(k) < fraction}
    return chosen or {min(keys, key=key_score)}


class KeySubset(SubsetDataset):
    """The examples of ``dataset`` at ``indices``, one ``split`` of it (other attributes are the whole
    dataset's)."""

    def __init__(self, dataset: Any, indices: list[int], split: str) -> None:
        super().__init__(dataset, indices)
        self.split = split

    def keys(self) -> list[str]:
        """The keys of this split's examples, without decoding images."""
        every = self.parent.keys()
        return [every[i] for i in self.indices]

    def __getattr__(self, name: str) -> Any:  # skip_reasons, merged, describe_skips, spec, ...
        if name == "parent":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.parent, name)


def split_dataset(dataset: Any, fraction: float, split: str) -> Any:
    """``dataset`` (which has ``keys()``) without its held-out examples (``split="train"``), or only them
    (``split="eval"``); unchanged when ``fraction`` is 0 and the split is train."""
    if fraction <= 0 and split != EVAL:
        return dataset
    keys = dataset.keys()
    held = held_out_keys(keys, fraction)
    indices = [i for i, k in enumerate(keys) if (k in held) == (split == EVAL)]
    return KeySubset(dataset, indices, split)


__all__ = ["EVAL", "held_out_keys", "key_score", "split_dataset", "KeySubset"]
