"""What training knows of each example without decoding it again: its key, captions, size and pixel
digest (:class:`ExampleInfo`), described all at once or as each is first drawn (:class:`LazyInfos`),
with a batch's decoded examples kept for the latent cache's encode right after (:class:`RecentlyDrawn`)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from adaptkit.component import Example, StyleDataset
from adaptkit.data.views import DatasetView

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ExampleInfo:
    """What training needs to know of one example without decoding its image again."""

    key: str
    captions: list[str]
    size: tuple[int, int]  # (width, height) of the decoded image
    digest: str = ""  # content hash of the RGB pixels ("" when not computed)


def pixel_digest(image: Image.Image) -> str:
    """A hash of an RGB image's size and pixels (SHA-256 over the pixel buffer, without copying it
    to bytes: about twice as fast as ``blake2b(image.tobytes())`` on a 3-megapixel photo)."""
    digest = hashlib.sha256(f"{image.size}".encode())
    digest.update(memoryview(np.asarray(image)).cast("B"))
    return digest.hexdigest()[:32]


def describe_example(example: Example, digest: bool = False) -> ExampleInfo:
    """One decoded example's key, captions, image size and (optionally) its pixel-content hash."""
    from adaptkit.data.images import to_rgb

    captions = [example.captions] if isinstance(example.captions, str) else list(example.captions)
    return ExampleInfo(example.key, captions, example.image.size, pixel_digest(to_rgb(example.image)) if digest else "")


def describe_examples(examples: StyleDataset, digests: bool = False) -> list[ExampleInfo]:
    """Decode every example once, now: see :func:`describe_example`."""
    return [describe_example(examples[index], digests) for index in range(len(examples))]


class LazyInfos(Sequence[ExampleInfo]):
    """Each example's :class:`ExampleInfo`, described when first asked for and kept: a run that
    starts at once decodes (and hashes) the examples it draws, not the whole dataset first."""

    def __init__(self, examples: StyleDataset, digests: bool = False) -> None:
        self.examples = examples
        self.digests = digests
        self._known: dict[int, ExampleInfo] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> ExampleInfo:  # type: ignore[override]
        info = self._known.get(index)
        if info is None:
            info = self._known[index] = describe_example(self.examples[index], self.digests)
        return info

    @property
    def described(self) -> int:
        """How many examples have been described so far."""
        return len(self._known)


class RecentlyDrawn(DatasetView):
    """``examples`` with the last ``capacity`` decoded examples kept, so that a batch's examples,
    described as they are first drawn (:class:`LazyInfos`), are encoded into the latent cache right
    after without being decoded (or, for a procedural dataset, rendered) a second time."""

    def __init__(self, examples: StyleDataset, capacity: int) -> None:
        super().__init__(examples)
        self.capacity = max(1, capacity)
        self._recent: OrderedDict[int, Example] = OrderedDict()

    def __getitem__(self, index: int) -> Example:
        example = self._recent.get(index)
        if example is None:
            example = self._recent[index] = self._dataset[index]
            while len(self._recent) > self.capacity:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(index)
        return example
