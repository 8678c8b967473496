"""Deterministic, resumable, sharded batches.

Every random choice of a training example (which image, crop, flip, caption, caption dropout)
is a pure function of ``(seed, position)``, where ``position`` counts examples drawn over the
whole run across all processes. So a run resumed at step *k* draws exactly the batches an
uninterrupted run would, with nothing to restore but the step, and N processes split each
global batch between them without overlap.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

from adaptkit.component import Example, StyleDataset


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from any parts (unlike ``hash``, the same in every process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Layout:
    """How examples are laid out over steps, micro-batches and processes."""

    batch_size: int
    gradient_accumulation: int
    num_processes: int = 1
    process_index: int = 0

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.gradient_accumulation * self.num_processes

    def positions(self, step: int) -> list[int]:
        """Positions this process consumes at optimizer step ``step`` (0-based), micro-batch by micro-batch."""
        out = []
        for micro in range(self.gradient_accumulation):
            base = (step * self.gradient_accumulation + micro) * self.batch_size * self.num_processes
            start = base + self.process_index * self.batch_size
            out.extend(range(start, start + self.batch_size))
        return out


class PositionSampler(Sampler[int]):
    """Yields this process's positions from ``start_step`` to ``end_step``."""

    def __init__(self, layout: Layout, start_step: int, end_step: int) -> None:
        self.layout, self.start_step, self.end_step = layout, start_step, end_step

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            yield from self.layout.positions(step)

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.layout.batch_size * self.layout.gradient_accumulation


class TrainingExamples(Dataset):
    """Maps a position to a transformed (pixels, caption) pair, reproducibly.

    ``transform(image, rng) -> tensor`` is the shared image pipeline; ``choose_caption(captions,
    rng) -> str`` picks among several captions. ``caption_dropout`` replaces the caption with ""
    (for classifier-free guidance).
    """

    def __init__(
        self,
        examples: StyleDataset,
        transform: Callable[[object, random.Random], torch.Tensor],
        choose_caption: Callable[[list[str], random.Random], str],
        seed: int,
        caption_dropout: float = 0.0,
    ) -> None:
        if len(examples) == 0:
            raise ValueError("empty dataset")
        self.examples = examples
        self.transform = transform
        self.choose_caption = choose_caption
        self.seed = seed
        self.caption_dropout = caption_dropout
        self._cached_epoch: int | None = None
        self._cached_order = torch.empty(0, dtype=torch.long)

    def index_of(self, position: int) -> int:
        """The example index at ``position``: a fresh seeded permutation every epoch."""
        epoch, offset = divmod(position, len(self.examples))
        return int(self._epoch_order(epoch)[offset])

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._cached_epoch != epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._cached_order = torch.randperm(len(self.examples), generator=generator)
            self._cached_epoch = epoch
        return self._cached_order

    def __len__(self) -> int:  # positions are unbounded; the sampler bounds them
        return 2**62

    def __getitem__(self, position: int) -> dict:
        rng = random.Random(derive_seed(self.seed, "example", position))
        example: Example = self.examples[self.index_of(position)]
        pixels = self.transform(example.image, rng)
        caption = self.choose_caption(example.captions, rng)
        if self.caption_dropout and rng.random() < self.caption_dropout:
            caption = ""
        return {"pixel_values": pixels, "caption": caption, "key": example.key, "position": position}


class Collate:
    """Stacks pixels and tokenizes captions (in the data-loader workers, off the training thread).

    Captions longer than the tokenizer's ``model_max_length`` are truncated, as every SD trainer
    does, and counted in ``truncated`` so the run can say how many lost words.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.max_length = tokenizer.model_max_length

    def __call__(self, rows: list[dict]) -> dict:
        captions = [r["caption"] for r in rows]
        lengths = [len(ids) for ids in self.tokenizer(captions, truncation=False, padding=False).input_ids]
        input_ids = self.tokenizer(
            captions, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return {
            "pixel_values": torch.stack([r["pixel_values"] for r in rows]).contiguous(),
            "input_ids": input_ids,
            "captions": captions,
            "truncated": sum(length > self.max_length for length in lengths),
            "keys": [r["key"] for r in rows],
            "positions": [r["position"] for r in rows],
        }
