"""The examples a run trains on (or validates on), as the recipe's ``[data]`` shapes them: at most
``max_examples`` of the split, each caption with the recipe's ``caption_prefix`` and ``caption_suffix``
(trigger words, as kohya's sd-scripts adds them: joined by a space, to non-empty captions), and the
``[[data.sets]]`` beside them, each with its own rules and ``repeats``, as one dataset
(:func:`load_training_sets`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.component import Example, StyleDataset
from adaptkit.data.loading import limit_examples
from adaptkit.data.views import DatasetView
from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.component import DatasetAdapter
    from adaptkit.recipe import DataSection


def with_affixes(caption: str, prefix: str, suffix: str) -> str:
    """``caption`` with ``prefix`` before and ``suffix`` after it, space-joined (an empty caption stays empty)."""
    if not caption:
        return caption
    return " ".join(part for part in (prefix, caption, suffix) if part)


class MaskFiles(DatasetView):
    """``dataset`` with each example's loss mask read from ``folder`` (the file with the image's stem),
    in place of its transparency."""

    def __init__(self, dataset: StyleDataset, folder: Path) -> None:
        super().__init__(dataset)
        self.folder = folder
        self.masks = {p.stem: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}

    def __getitem__(self, index: int) -> Example:
        from PIL import Image

        from adaptkit.data.images import ALPHA_KEY, FILE_NAME_KEY, to_rgb

        example = self._dataset[index]
        path = self.masks.get(Path(str(example.meta.get(FILE_NAME_KEY, ""))).stem)
        meta = {key: value for key, value in example.meta.items() if key != ALPHA_KEY}
        if path is not None:
            with Image.open(path) as mask:
                meta[ALPHA_KEY] = to_rgb(mask).convert("L").resize(example.image.size)
        return Example(example.image, example.captions, example.key, meta)


class CaptionAffixes(DatasetView):
    """``dataset`` with every caption given the prefix and suffix."""

    def __init__(self, dataset: StyleDataset, prefix: str, suffix: str) -> None:
        super().__init__(dataset)
        self.prefix, self.suffix = prefix, suffix

    def __getitem__(self, index: int) -> Example:
        example = self._dataset[index]
        captions = [example.captions] if isinstance(example.captions, str) else list(example.captions)
        affixed = [with_affixes(caption, self.prefix, self.suffix) for caption in captions]
        return Example(example.image, affixed, example.key, example.meta)


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
    if data.masked_loss and data.mask_dir:
        folder = Path(data.mask_dir).expanduser()
        if not folder.is_dir():
            raise UserError(f"data.mask_dir: {folder}: no such folder")
        examples = MaskFiles(examples, folder)
    if split == "train" and data.max_examples:
        examples = limit_examples(examples, data.max_examples)
    if data.caption_prefix or data.caption_suffix:
        examples = CaptionAffixes(examples, data.caption_prefix, data.caption_suffix)
    return examples


class ConcatExamples(StyleDataset):
    """Several datasets as one: the examples of the first, then the second's, and so on."""

    def __init__(self, parts: Sequence[StyleDataset]) -> None:
        self.parts = list(parts)
        self.name = self.parts[0].name
        self.starts = [0]
        for part in self.parts:
            self.starts.append(self.starts[-1] + len(part))

    @property
    def skipped(self) -> int:  # type: ignore[override]
        """Rows every part skipped."""
        return sum(getattr(part, "skipped", 0) for part in self.parts)

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        part = next(i for i in range(len(self.parts)) if index < self.starts[i + 1])
        return self.parts[part][index - self.starts[part]]

    def blocks(self) -> list[int] | None:
        """The parts' blocks, numbered apart; a part without blocks has one per example. None when no
        part has blocks."""
        found = [part.blocks() for part in self.parts]
        if all(blocks is None for blocks in found):
            return None
        out: list[int] = []
        for part, blocks in zip(self.parts, found, strict=True):
            first = max(out, default=-1) + 1
            out.extend(first + block for block in (blocks if blocks is not None else range(len(part))))
        return out

    def sizes(self) -> list[tuple[int, int]] | None:
        """The parts' image sizes, when every part knows its own."""
        found = [part.sizes() for part in self.parts]
        return None if any(sizes is None for sizes in found) else [size for sizes in found for size in sizes or []]


@dataclass
class TrainingSets:
    """The examples of every set of a run, concatenated, and how often each appears per epoch."""

    examples: StyleDataset
    #: Per example, its set's repeats; None when every set has 1 (the plain per-epoch order).
    repeats: list[int] | None
    #: ``(adapter name, examples, repeats)`` per set, ``[data]``'s first.
    shares: list[tuple[str, int, int]]
    #: Per example, its set's ``loss_weight``; None when every set has 1.
    weights: list[float] | None = None

    def share_lines(self) -> list[str]:
        """One line per set: its examples x repeats and its share of an epoch."""
        total = sum(count * repeats for _, count, repeats in self.shares)
        return [
            f"set {i} ({name}): {count} examples x {repeats} repeats = {count * repeats} of {total} per epoch "
            f"({100 * count * repeats / total:.0f}%)"
            for i, (name, count, repeats) in enumerate(self.shares)
        ]


def load_training_sets(
    adapter: "DatasetAdapter",
    data: "DataSection",
    extra: Sequence["DatasetAdapter"] = (),
    pending: "set[int] | frozenset[int]" = frozenset(),
) -> TrainingSets:
    """``[data]``'s training examples and each ``[[data.sets]]`` entry's (``extra``: their adapters),
    each by its own rules, as one dataset with per-example repeats and loss weights; the entries in
    ``pending`` (prior sets whose images are yet to be generated) are left out."""
    parts = [load_run_examples(adapter, data)]
    shares = [(adapter.name, len(parts[0]), data.repeats)]
    set_weights = [1.0]
    for i, (entry, set_adapter) in enumerate(zip(data.sets, extra, strict=True)):
        if i in pending:
            continue
        rules = {key: getattr(entry, key) for key in ("caption_prefix", "caption_suffix", "max_examples")}
        parts.append(load_run_examples(set_adapter, data.model_copy(update=rules)))
        shares.append((set_adapter.name, len(parts[-1]), entry.repeats))
        set_weights.append(entry.loss_weight)
    if len(parts) == 1 and data.repeats == 1:
        return TrainingSets(parts[0], None, shares)
    repeats = [r for part, (_, _, r) in zip(parts, shares, strict=True) for _ in range(len(part))]
    weights = [w for part, w in zip(parts, set_weights, strict=True) for _ in range(len(part))]
    return TrainingSets(
        ConcatExamples(parts),
        None if set(repeats) == {1} else repeats,
        shares,
        None if set(weights) == {1.0} else weights,
    )
