"""The examples a run trains on (or validates on), as the recipe's ``[data]`` shapes them: at most
``max_examples`` of the split, each caption with the recipe's ``caption_prefix`` and ``caption_suffix``
(trigger words, as kohya's sd-scripts adds them: joined by a space, to non-empty captions)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.component import Example, StyleDataset
from adaptkit.data.loading import limit_examples

if TYPE_CHECKING:
    from adaptkit.component import DatasetAdapter
    from adaptkit.recipe import DataSection


def with_affixes(caption: str, prefix: str, suffix: str) -> str:
    """``caption`` with ``prefix`` before and ``suffix`` after it, space-joined (an empty caption stays empty)."""
    if not caption:
        return caption
    return " ".join(part for part in (prefix, caption, suffix) if part)


class CaptionAffixes(StyleDataset):
    """``dataset`` with every caption given the prefix and suffix."""

    def __init__(self, dataset: StyleDataset, prefix: str, suffix: str) -> None:
        self._dataset, self.prefix, self.suffix = dataset, prefix, suffix
        self.name = dataset.name

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> Example:
        example = self._dataset[index]
        captions = [example.captions] if isinstance(example.captions, str) else list(example.captions)
        affixed = [with_affixes(caption, self.prefix, self.suffix) for caption in captions]
        return Example(example.image, affixed, example.key, example.meta)

    def __getattr__(self, name: str) -> Any:  # skipped, keys, describe_skips, ...
        return getattr(self._dataset, name)


def without_keys(examples: StyleDataset, exclude_file: str) -> StyleDataset:
    """``examples`` less those whose key ``exclude_file`` lists (read without decoding images when the
    dataset can list its keys)."""
    from adaptkit.data.dedupe import read_exclude_file
    from adaptkit.data.loading import SubsetDataset

    excluded = read_exclude_file(Path(exclude_file))
    keys = examples.keys() if hasattr(examples, "keys") else [examples[i].key for i in range(len(examples))]
    return SubsetDataset(examples, [i for i, key in enumerate(keys) if key not in excluded])


def load_run_examples(adapter: "DatasetAdapter", data: "DataSection", split: str = "train") -> StyleDataset:
    """``adapter``'s ``split`` without the ``data.exclude_keys``, limited to ``data.max_examples``
    (training only), with the caption affixes."""
    examples = adapter.load(split)
    if data.exclude_keys:
        examples = without_keys(examples, data.exclude_keys)
    if split == "train" and data.max_examples:
        examples = limit_examples(examples, data.max_examples)
    if data.caption_prefix or data.caption_suffix:
        examples = CaptionAffixes(examples, data.caption_prefix, data.caption_suffix)
    return examples
