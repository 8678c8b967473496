"""Aspect-ratio buckets (kohya sd-scripts style): train on whole images instead of square crops.

Buckets are (width, height) pairs, both multiples of ``step``, whose pixel count is the largest
not above ``max_pixels`` for that width. Each image goes to the bucket nearest its aspect ratio
(in log space); it is then resized to just cover the bucket and centre-cropped, so it loses
less than one bucket step on one axis. :class:`BucketOrder` draws every micro-batch from a
single bucket, as a pure function of ``(seed, position)``, so resume stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from adaptkit.data.shards import BLOCKS_IN_FLIGHT
from adaptkit.training.batches import derive_seed

Size = tuple[int, int]  # (width, height)


def make_buckets(max_pixels: int, step: int, max_aspect: float = 2.0) -> list[Size]:
    """Every (width, height), multiples of ``step``, with the largest area ≤ ``max_pixels`` for its width.

    Only shapes with ``max(w/h, h/w) <= max_aspect`` are kept; sorted by aspect ratio (w/h).
    """
    if step < 8 or step % 8:
        raise ValueError(f"bucket step must be a positive multiple of 8, got {step}")
    if step * step > max_pixels:
        raise ValueError(f"bucket step {step} is too large for max_pixels {max_pixels} (step² > max_pixels)")
    buckets: set[Size] = set()
    width = step
    while width * step <= max_pixels:
        height = (max_pixels // width) // step * step
        if max(width / height, height / width) <= max_aspect:
            buckets.add((width, height))
        width += step
    return sorted(buckets, key=lambda size: size[0] / size[1])


def nearest_bucket(size: Size, buckets: Sequence[Size]) -> Size:
    """The bucket whose aspect ratio is nearest (in log ratio) to ``size`` = (width, height)."""
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda bucket: (abs(math.log(bucket[0] / bucket[1]) - ratio), -bucket[0] * bucket[1]))


@dataclass(frozen=True)
class BucketPlan:
    """Which bucket each example (by index) trains at."""

    sizes: list[Size]  # per example index

    @classmethod
    def for_images(cls, image_sizes: Sequence[Size], max_pixels: int, step: int, max_aspect: float) -> BucketPlan:
        """Assign every image (given by its (width, height)) to its nearest bucket."""
        buckets = make_buckets(max_pixels, step, max_aspect)
        return cls([nearest_bucket(size, buckets) for size in image_sizes])

    def groups(self) -> list[list[int]]:
        """Example indices per bucket, buckets in a stable order (by size)."""
        by_size: dict[Size, list[int]] = {}
        for index, size in enumerate(self.sizes):
            by_size.setdefault(size, []).append(index)
        return [by_size[size] for size in sorted(by_size)]


class BucketOrder:
    """Maps a position to an example index so that each aligned run of ``batch_size`` positions
    (one process's micro-batch, see :class:`~adaptkit.training.batches.Layout`) is one bucket.

    Every epoch, each bucket's members are shuffled and cut into chunks of ``batch_size`` (a short
    last chunk wraps around the bucket's own order), and the chunks of all buckets are shuffled
    together: all seeded by ``(seed, epoch)``. An epoch holds a fixed number of chunks, so the
    chunk, and hence the bucket, of any position is found without replaying earlier epochs.

    With ``blocks`` (a sharded dataset's, :meth:`~adaptkit.component.StyleDataset.blocks`) the
    epoch also goes block by block: the blocks are shuffled, each bucket's members are ordered by
    their block's place (shuffled within it) before they are cut, and the chunks are drawn
    ``in_flight`` blocks at a time (shuffled within those), so each block is read about once an epoch.
    """

    def __init__(
        self,
        plan: BucketPlan,
        batch_size: int,
        seed: int,
        repeats: Sequence[int] | None = None,
        blocks: Sequence[int] | None = None,
        in_flight: int = BLOCKS_IN_FLIGHT,
    ) -> None:
        groups = plan.groups()
        self.groups = groups if repeats is None else [[i for i in g for _ in range(repeats[i])] for g in groups]
        self.batch_size = batch_size
        self.seed = seed
        self.chunks_per_epoch = sum(math.ceil(len(group) / batch_size) for group in self.groups)
        self.blocks = None if blocks is None else list(blocks)
        self.in_flight = in_flight
        self._cached_epoch: int | None = None
        self._chunks: list[list[int]] = []

    def index_of(self, position: int) -> int:
        """The example index at ``position``."""
        chunk, offset = divmod(position, self.batch_size)
        epoch, number = divmod(chunk, self.chunks_per_epoch)
        return self._epoch_chunks(epoch)[number][offset]

    def _epoch_chunks(self, epoch: int) -> list[list[int]]:
        if self._cached_epoch != epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "buckets", epoch))
            place = self._block_places(generator)
            chunks = []
            for group in self.groups:
                order = [group[i] for i in torch.randperm(len(group), generator=generator).tolist()]
                if place is not None:  # by block place, still shuffled within a block (the sort is stable)
                    order.sort(key=place.__getitem__)
                count = math.ceil(len(order) / self.batch_size)
                wrapped = order * math.ceil(count * self.batch_size / len(order))
                chunks.extend(wrapped[i * self.batch_size : (i + 1) * self.batch_size] for i in range(count))
            self._chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
            if place is not None:  # in_flight blocks at a time, by the block of each chunk's first example
                self._chunks.sort(key=lambda chunk: place[chunk[0]] // self.in_flight)
            self._cached_epoch = epoch
        return self._chunks

    def _block_places(self, generator: torch.Generator) -> list[int] | None:
        """Per example, its block's place in this epoch's shuffled order of blocks (None without blocks)."""
        if self.blocks is None:
            return None
        count = max(self.blocks) + 1
        places = torch.empty(count, dtype=torch.long)
        places[torch.randperm(count, generator=generator)] = torch.arange(count)
        rank = places.tolist()
        return [rank[block] for block in self.blocks]
