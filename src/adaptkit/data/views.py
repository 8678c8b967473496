"""A dataset seen through a change to its examples, keeping everything else the wrapped dataset has."""

from __future__ import annotations

from typing import Any

from adaptkit.component import StyleDataset


class DatasetView(StyleDataset):
    """``dataset`` with its examples changed by a subclass's ``__getitem__`` (captions affixed, masks
    read from files, recent decodes kept): the same length, blocks and sizes, and every other
    attribute (``skipped``, ``keys``, ``describe_skips``, …) the wrapped dataset's."""

    def __init__(self, dataset: StyleDataset) -> None:
        self._dataset = dataset
        self.name = dataset.name

    def __len__(self) -> int:
        return len(self._dataset)

    def blocks(self) -> list[int] | None:
        """The wrapped dataset's blocks."""
        return self._dataset.blocks()

    def sizes(self) -> list[tuple[int, int]] | None:
        """The wrapped dataset's image sizes."""
        return self._dataset.sizes()

    def __getattr__(self, name: str) -> Any:
        if name == "_dataset":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._dataset, name)
