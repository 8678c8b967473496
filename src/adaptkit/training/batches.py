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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch.utils.data import Dataset, Sampler

from adaptkit.component import Example, StyleDataset
from adaptkit.data.images import ALPHA_KEY
from adaptkit.data.pipeline import ImagePipeline
from adaptkit.training.example_infos import ExampleInfo

if TYPE_CHECKING:
    from adaptkit.recipe import TrainSection


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


class PositionOrder(Protocol):
    """Maps a position to an example index."""

    def index_of(self, position: int) -> int: ...


class EpochOrder:
    """Maps a position to an example index: a fresh seeded permutation of all examples every epoch
    (with ``repeats``, example ``i`` fills ``repeats[i]`` places of each epoch)."""

    def __init__(self, count: int, seed: int, repeats: Sequence[int] | None = None) -> None:
        self.slots = None if repeats is None else torch.tensor([i for i in range(count) for _ in range(repeats[i])])
        self.count = count if self.slots is None else len(self.slots)
        self.seed = seed
        self._cached_epoch: int | None = None
        self._cached_order = torch.empty(0, dtype=torch.long)

    def index_of(self, position: int) -> int:
        """The example index at ``position``."""
        epoch, offset = divmod(position, self.count)
        if self._cached_epoch != epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._cached_order = torch.randperm(self.count, generator=generator)
            if self.slots is not None:
                self._cached_order = self.slots[self._cached_order]
            self._cached_epoch = epoch
        return int(self._cached_order[offset])


class TrainingExamples(Dataset):
    """Maps a position to a transformed (pixels, caption) pair, reproducibly.

    ``pipeline`` is the shared image pipeline; ``choose_caption(captions, rng) -> str`` picks among
    several captions. ``caption_dropout`` replaces the caption with "" (for classifier-free
    guidance). ``order`` maps positions to example indices (default: :class:`EpochOrder`; a
    :class:`~adaptkit.training.buckets.BucketOrder` for aspect-ratio buckets, with ``sizes`` giving
    each example's bucket). With ``infos`` and ``pixels=False`` (latents cached) no image is
    decoded: the row carries the example ``index`` and the ``flipped`` choice instead, drawn from
    the same random stream the pipeline would use, so the choices match the uncached run's.
    """

    def __init__(
        self,
        examples: StyleDataset,
        pipeline: ImagePipeline,
        choose_caption: Callable[[list[str], random.Random], str],
        seed: int,
        caption_dropout: float = 0.0,
        *,
        order: PositionOrder | None = None,
        sizes: list[tuple[int, int]] | None = None,
        infos: Sequence[ExampleInfo] | None = None,
        pixels: bool = True,
        masked: bool = False,
        mask_cache: "dict[tuple[int, bool], torch.Tensor | None] | None" = None,
        repeats: Sequence[int] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if len(examples) == 0:
            raise ValueError("empty dataset")
        if not pixels and (infos is None or not pipeline.center_crop):
            raise ValueError("pixels=False needs the example infos and a pipeline without random crops")
        self.examples = examples
        self.pipeline = pipeline
        self.choose_caption = choose_caption
        self.seed = seed
        self.caption_dropout = caption_dropout
        self.order = order or EpochOrder(len(examples), seed, repeats)
        self.sizes = sizes
        self.infos = infos
        self.pixels = pixels
        self.masked = masked
        self.mask_cache = mask_cache
        self.weights = weights
        if masked and not pixels and mask_cache is None:
            raise ValueError("masked=True with pixels=False needs the mask cache")

    def index_of(self, position: int) -> int:
        """The example index at ``position``."""
        return self.order.index_of(position)

    def __len__(self) -> int:  # positions are unbounded; the sampler bounds them
        return 2**62

    def __getitem__(self, position: int) -> dict:
        rng = random.Random(derive_seed(self.seed, "example", position))
        index = self.index_of(position)
        size = self.sizes[index] if self.sizes is not None else None
        row: dict = {"index": index, "position": position}
        if self.pixels:
            example: Example = self.examples[index]
            alpha = example.meta.get(ALPHA_KEY) if self.masked else None
            out = self.pipeline(example.image, rng, size=size, mask=alpha)
            row.update(pixel_values=out.pixel_values, flipped=out.flipped, key=example.key, geometry=out.geometry)
            if self.masked:
                row["mask"] = latent_mask(out.mask, out.pixel_values.shape[-2:])
            captions = example.captions
        else:
            assert self.infos is not None
            info = self.infos[index]
            geometry = self.pipeline.center_geometry(info.size, size)
            row.update(flipped=self.pipeline.draw_flip(rng), key=info.key, geometry=geometry)
            if self.masked:
                assert self.mask_cache is not None
                cached = self.mask_cache[(index, row["flipped"])]
                row["mask"] = cached if cached is not None else latent_mask(None, (geometry[4], geometry[5]))
            captions = info.captions
        if self.weights is not None:
            row["weight"] = float(self.weights[index])
        caption = self.choose_caption(captions, rng)
        if self.caption_dropout and rng.random() < self.caption_dropout:
            caption = ""
        row["caption"] = caption
        return row


#: Every supported VAE downsamples by 8: loss masks are kept at that resolution.
MASK_FACTOR = 8


def latent_mask(mask: torch.Tensor | None, pixel_size: Sequence[int]) -> torch.Tensor:
    """A (1, H, W) pixel mask in [0, 1] averaged over 8x8 cells (all ones when ``mask`` is None)."""
    height, width = (int(side) // MASK_FACTOR for side in pixel_size)
    if mask is None:
        return torch.ones(1, height, width)
    return torch.nn.functional.adaptive_avg_pool2d(mask, (height, width))


def loss_mask(batch: "Batch", latents: torch.Tensor) -> torch.Tensor | None:
    """The batch's loss weights on ``latents``' device and grid: its masks (``data.masked_loss``) times
    its examples' set weights; None when it has neither."""
    if batch.masks is None and batch.weights is None:
        return None
    if batch.masks is None:
        masks = torch.ones(latents.shape[0], 1, *latents.shape[-2:], device=latents.device)
    else:
        masks = batch.masks.to(latents.device, non_blocking=True)
    if masks.shape[-2:] != latents.shape[-2:]:  # a VAE that does not downsample by 8
        masks = torch.nn.functional.interpolate(masks, size=latents.shape[-2:], mode="area")
    if batch.weights is not None:
        masks = masks * batch.weights.to(latents.device).view(-1, 1, 1, 1)
    return masks


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    """Token ids padded to (and truncated at) the tokenizer's ``model_max_length``, as the text encoder takes them."""
    return tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def tokenize_all(tokenizers: Sequence, captions: list[str], chunks: int = 1) -> tuple[torch.Tensor, ...]:
    """:func:`tokenize` with each text encoder's tokenizer, in order (in ``chunks`` windows each when
    more than 1: :mod:`adaptkit.training.long_captions`)."""
    if chunks > 1:
        from adaptkit.training.long_captions import tokenize_chunked

        return tuple(tokenize_chunked(tokenizer, captions, chunks) for tokenizer in tokenizers)
    return tuple(tokenize(tokenizer, captions) for tokenizer in tokenizers)


@dataclass
class Batch:
    """One micro-batch as the trainer reads it (made by :class:`Collate` in the data-loader workers)."""

    input_ids: tuple[torch.Tensor, ...]  # one per text encoder
    captions: list[str]
    truncated: int  # captions cut at the (first) tokenizer's length
    keys: list[str]
    positions: list[int]
    indices: list[int]  # into the training examples (the latent cache's rows)
    flipped: list[bool]
    geometry: torch.Tensor  # (batch, 6): original h, w, crop top, left, target h, w
    pixel_values: torch.Tensor | None = None  # absent when latents come from the cache
    masks: torch.Tensor | None = None  # (batch, 1, h/8, w/8) loss weights, with data.masked_loss
    weights: torch.Tensor | None = None  # (batch,) the examples' sets' loss_weight, when one is not 1

    def pin_memory(self) -> "Batch":
        """Page-locked tensors (the data loader calls this with ``pin_memory=True``)."""
        self.input_ids = tuple(ids.pin_memory() for ids in self.input_ids)
        if self.pixel_values is not None:
            self.pixel_values = self.pixel_values.pin_memory()
        if self.masks is not None:
            self.masks = self.masks.pin_memory()
        if self.weights is not None:
            self.weights = self.weights.pin_memory()
        return self


class Collate:
    """Stacks pixels and tokenizes captions (in the data-loader workers, off the training thread).

    Captions longer than the tokenizer's ``model_max_length`` are truncated, as every SD trainer
    does, and counted in ``truncated`` so the run can say how many lost words.
    """

    def __init__(self, tokenizers: Sequence, chunks: int = 1) -> None:
        self.tokenizers = tuple(tokenizers)
        self.tokenizer = self.tokenizers[0]
        self.chunks = chunks
        self.max_length = (
            chunks * (self.tokenizer.model_max_length - 2) + 2 if chunks > 1 else self.tokenizer.model_max_length
        )

    def __call__(self, rows: list[dict]) -> Batch:
        captions = [r["caption"] for r in rows]
        lengths = [len(ids) for ids in self.tokenizer(captions, truncation=False, padding=False).input_ids]
        return Batch(
            input_ids=tokenize_all(self.tokenizers, captions, self.chunks),
            geometry=torch.tensor([r["geometry"] for r in rows], dtype=torch.long),
            captions=captions,
            truncated=sum(length > self.max_length for length in lengths),
            keys=[r["key"] for r in rows],
            positions=[r["position"] for r in rows],
            indices=[r["index"] for r in rows],
            flipped=[r["flipped"] for r in rows],
            pixel_values=torch.stack([r["pixel_values"] for r in rows]).contiguous()
            if "pixel_values" in rows[0]
            else None,
            masks=torch.stack([r["mask"] for r in rows]) if "mask" in rows[0] else None,
            weights=torch.tensor([r["weight"] for r in rows]) if "weight" in rows[0] else None,
        )


def training_loader(
    examples: TrainingExamples,
    layout: Layout,
    start_step: int,
    train: "TrainSection",
    tokenizers: Sequence,
    chunks: int = 1,
) -> "torch.utils.data.DataLoader":
    """The data loader of a run from ``start_step``: positions from :class:`PositionSampler`, batches
    collated (and tokenized for every text encoder) in ``train.num_workers`` workers that ignore
    stop signals (the main process handles them)."""
    from torch.utils.data import DataLoader

    from adaptkit.training.signals import ignore_stop_signals

    return DataLoader(
        examples,
        batch_size=train.batch_size,
        sampler=PositionSampler(layout, start_step, train.steps),
        collate_fn=Collate(tokenizers, chunks),
        num_workers=train.num_workers,
        worker_init_fn=ignore_stop_signals if train.num_workers else None,
        pin_memory=torch.cuda.is_available(),
    )
