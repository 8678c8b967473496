"""An epoch order that reads a sharded dataset block by block, the way WebDataset-style loaders do.

For a dataset whose examples come in blocks that read cheaply together (tar shards, parquet row
groups: :meth:`~adaptkit.component.StyleDataset.blocks`), a permutation of *all* examples would
jump to another block on nearly every draw. :class:`BlockOrder` instead shuffles the blocks each
epoch, takes them :data:`BLOCKS_IN_FLIGHT` at a time and shuffles the examples of those blocks
together. Like :class:`~adaptkit.training.batches.EpochOrder` it is a pure function of
``(seed, position)``: a resumed run draws exactly what an uninterrupted one would, with nothing to
restore but the step, and every process computes the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adaptkit.data.shards import BLOCKS_IN_FLIGHT
from adaptkit.training.batches import derive_seed


class BlockOrder:
    """Maps a position to an example index, block by block (see the module docstring).

    ``blocks[i]`` is example ``i``'s block; with ``repeats``, example ``i`` fills ``repeats[i]``
    places of each epoch, within its block.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        seed: int,
        repeats: Sequence[int] | None = None,
        in_flight: int = BLOCKS_IN_FLIGHT,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        members: dict[int, list[int]] = {}
        for index, block in enumerate(blocks):
            members.setdefault(block, []).extend([index] * (1 if repeats is None else repeats[index]))
        self.groups = [torch.tensor(indices, dtype=torch.long) for _, indices in sorted(members.items())]
        self.count = sum(len(group) for group in self.groups)
        if self.count == 0:
            raise ValueError("BlockOrder: no examples")
        self.seed = seed
        self.in_flight = in_flight
        self._cached_epoch: int | None = None
        self._cached_order = torch.empty(0, dtype=torch.long)

    def epoch(self, epoch: int) -> torch.Tensor:
        """Every example index of ``epoch``, in drawing order."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "blocks", epoch))
        shuffled = [self.groups[i] for i in torch.randperm(len(self.groups), generator=generator).tolist()]
        parts = []
        for start in range(0, len(shuffled), self.in_flight):
            together = torch.cat(shuffled[start : start + self.in_flight])
            parts.append(together[torch.randperm(len(together), generator=generator)])
        return torch.cat(parts)

    def index_of(self, position: int) -> int:
        """The example index at ``position``."""
        epoch, offset = divmod(position, self.count)
        if self._cached_epoch != epoch:
            self._cached_order = self.epoch(epoch)
            self._cached_epoch = epoch
        return int(self._cached_order[offset])
