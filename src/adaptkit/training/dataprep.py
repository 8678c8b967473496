"""From a recipe's ``[data]`` and ``[train]`` sections to the training examples and their caches.

One place decides what the data side of a run looks like: which order positions map to (a
seeded permutation per epoch, aspect-ratio buckets, or a sharded source's blocks), which output
size each image trains at, and whether images are decoded every step or their latents come from
a cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adaptkit.component import StyleDataset
from adaptkit.data.pipeline import ImagePipeline
from adaptkit.data.tags import caption_chooser
from adaptkit.errors import UserError
from adaptkit.recipe import Recipe
from adaptkit.training.batches import TrainingExamples, latent_mask
from adaptkit.training.cache import CacheSettings
from adaptkit.training.example_infos import ExampleInfo, LazyInfos, RecentlyDrawn, describe_examples
from adaptkit.training.latent_store import DiskStore
from adaptkit.training.long_captions import caption_chunks, condition_chunked

if TYPE_CHECKING:
    import torch

    from adaptkit.recipe import DataSection


@dataclass
class TrainingData:
    """The examples as training draws them, plus what the caches need to know."""

    examples: TrainingExamples
    pipeline: ImagePipeline
    infos: Sequence[ExampleInfo] | None
    sizes: list[tuple[int, int]]


def first_draw(settings: CacheSettings, data: "DataSection", sizes_known: bool = False) -> bool:
    """Whether the caches fill as batches first draw their examples (``[data] cache_fill``): then
    nothing is described or encoded before the first step. Masked-loss masks need every image's
    alpha up front, and buckets every image's size, which only a dataset that knows its sizes
    without decoding (``sizes_known``: :meth:`~adaptkit.component.StyleDataset.sizes`) gives, so
    otherwise every image is described first."""
    return settings.first_draw and not data.masked_loss and (sizes_known or not data.bucketing)


def bucket_settings(recipe: Recipe) -> tuple[int, int]:
    """(max_pixels, step) for ``[data] bucketing``, defaults filled in."""
    data = recipe.data
    max_pixels = data.bucket_max_pixels or data.resolution * data.resolution
    step = data.bucket_step or (64 if data.resolution >= 256 else 8)
    if step * step > max_pixels:
        raise UserError(
            f"data.bucket_step = {step}: too large for buckets of {max_pixels} pixels "
            f"(step² must not exceed data.bucket_max_pixels); use a step of at most {int(max_pixels**0.5) // 8 * 8}"
        )
    return max_pixels, step


def main_process_print(line: str) -> None:
    """Print ``line`` on the main process only (``RANK`` 0, or no ``RANK``: not launched by torchrun)."""
    if os.environ.get("RANK", "0") == "0":
        print(line, flush=True)


def batch_larger_than_dataset(batch_size: int, examples: int) -> str | None:
    """The line telling the user that every batch repeats examples, or None when the dataset is large enough."""
    if batch_size <= examples:
        return None
    return (
        f"train.batch_size = {batch_size} is larger than the dataset ({examples} example"
        f"{'' if examples == 1 else 's'}): every batch repeats examples; "
        f"use train.batch_size <= {examples} (or more images) to train on distinct ones"
    )


def build_training_data(
    examples: StyleDataset,
    recipe: Recipe,
    settings: CacheSettings,
    log: Callable[[str], None] = main_process_print,
    repeats: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
) -> TrainingData:
    """The :class:`TrainingExamples` for a run: buckets if asked, no per-step decoding when latents are
    cached; ``repeats``: how often each example appears per epoch (several sets).

    ``log`` hears one line when ``train.batch_size`` exceeds the number of examples (the run
    trains on repeats).
    """
    from adaptkit.training.block_order import BlockOrder
    from adaptkit.training.buckets import BucketOrder, BucketPlan

    data, train = recipe.data, recipe.train
    warning = batch_larger_than_dataset(train.batch_size, len(examples))
    if warning is not None:
        log(warning)
    pipeline = ImagePipeline.from_data_section(data)
    needs_infos = settings.latents or settings.text or data.bucketing
    digests = settings.latents and settings.directory is not None
    infos: Sequence[ExampleInfo] | None = None
    image_sizes = examples.sizes() if data.bucketing and first_draw(settings, data, sizes_known=True) else None
    if needs_infos and first_draw(settings, data, image_sizes is not None):  # nothing decoded before step 1
        examples = RecentlyDrawn(examples, 2 * train.batch_size)  # a batch decoded once, then encoded
        infos = LazyInfos(examples, digests)
    elif needs_infos:
        infos = describe_examples(examples, digests)
    square = (data.resolution, data.resolution)
    sizes, order = [square] * len(examples), None
    if data.bucketing:
        assert infos is not None
        max_pixels, step = bucket_settings(recipe)
        if image_sizes is None:
            image_sizes = [info.size for info in infos]
        plan = BucketPlan.for_images(image_sizes, max_pixels, step, data.bucket_max_aspect)
        blocks = examples.blocks()  # a sharded source: buckets drawn block by block too
        sizes, order = plan.sizes, BucketOrder(plan, train.batch_size, train.seed, repeats, blocks)
    elif (blocks := examples.blocks()) is not None:  # a sharded source: read block by block
        order = BlockOrder(blocks, train.seed, repeats)
    masked = data.masked_loss
    mask_cache = None
    if masked and settings.latents:  # the cached latents' masks, computed once as the latents are
        mask_cache = loss_masks(examples, pipeline, sizes if data.bucketing else None)
    training_examples = TrainingExamples(
        examples,
        pipeline,
        caption_chooser(data),
        seed=train.seed,
        caption_dropout=train.caption_dropout,
        order=order,
        sizes=sizes if data.bucketing else None,
        infos=infos,
        pixels=not settings.latents,
        masked=masked,
        mask_cache=mask_cache,
        repeats=repeats,
        weights=weights,
    )
    return TrainingData(training_examples, pipeline, infos, sizes)


def loss_masks(
    examples: StyleDataset, pipeline: ImagePipeline, sizes: list[tuple[int, int]] | None
) -> dict[tuple[int, bool], torch.Tensor | None]:
    """Each example's loss mask as the cached latents see it (centre crop, each flip, its bucket):
    ``(index, flipped) -> (1, h/8, w/8)``, or None for an image without transparency."""
    from adaptkit.data.images import ALPHA_KEY

    masks: dict[tuple[int, bool], torch.Tensor | None] = {}
    flips = (False, True) if pipeline.random_flip else (False,)
    for index in range(len(examples)):
        example = examples[index]
        alpha = example.meta.get(ALPHA_KEY)
        for flip in flips:
            if alpha is None:
                masks[(index, flip)] = None
                continue
            size = sizes[index] if sizes is not None else None
            out = pipeline(example.image, None, size=size, flip=flip, mask=alpha)
            masks[(index, flip)] = latent_mask(out.mask, out.pixel_values.shape[-2:])
    return masks


def keep_under_limit(store: DiskStore, limit: int, log: Callable[[str], None]) -> None:
    """Evict the least recently used entries of ``store``'s folder beyond ``limit`` bytes, never
    the run's own; one line when something went or the run's own entries exceed the limit."""
    from adaptkit.training.cache_folder import LIMIT_ENV, evict, format_size

    done = evict(store.directory, limit, keep=store.used)
    if done.removed:
        log(
            f"cache: {done.removed} least recently used latents ({format_size(done.freed)}) removed from "
            f"{store.directory} to keep it under {format_size(limit)} (${LIMIT_ENV})"
        )
    if done.left > limit:
        log(
            f"cache: this run's latents alone take {format_size(done.left)} in {store.directory}, more than its "
            f"limit of {format_size(limit)} (${LIMIT_ENV}); a later run's fill evicts them"
        )


def fill_caches(data: TrainingData, settings: CacheSettings, components, accelerator, recipe: Recipe):
    """Fill the latent and text caches the settings ask for; returns ``(LatentCache | None, TextCache | None)``.

    Runs under the run's autocast so cached outputs equal the ones the loop would compute.
    """
    from accelerate.utils import gather_object

    from adaptkit.training.cache import LatentJob, fill_latent_cache
    from adaptkit.training.text_cache import TextStore, captions_to_cache, fill_text_cache, text_identity

    def log(line: str) -> None:
        if accelerator.is_main_process:
            print(line, flush=True)

    latents = text = None
    batch = max(recipe.train.batch_size, 8)
    if settings.latents:
        assert data.infos is not None
        flips = (False, True) if data.pipeline.random_flip else (False,)
        job = LatentJob(
            data.examples.examples, data.infos, data.sizes, flips, data.pipeline, recipe.train.mixed_precision
        )
        store = DiskStore(settings.directory) if settings.directory is not None else None
        latents = fill_latent_cache(
            job,
            components.vae,
            device=accelerator.device,
            autocast=accelerator.autocast,
            batch_size=batch,
            store=store,
            shard=(accelerator.process_index, accelerator.num_processes),
            wait=accelerator.wait_for_everyone,
            gather=gather_object,
            log=log,
            first_draw=settings.first_draw,
        )
        if store is not None and settings.limit is not None and accelerator.is_main_process and not latents.first_draw:
            keep_under_limit(store, settings.limit, log)  # first-draw: at the end, when the run's entries are known
    if settings.text:
        assert data.infos is not None
        lazy = isinstance(data.infos, LazyInfos)
        captions = None if lazy else captions_to_cache(data.infos, recipe.train.caption_dropout)
        chunks = caption_chunks(recipe.data)
        encoders = list(components.text_encoders().values())
        text_store = None
        if lazy:  # first-draw: kept on disk beside the latents, under the same limit
            assert latents is not None and latents.first_draw is not None
            identity = text_identity(
                components.family.name, encoders, components.tokenizers(), chunks, recipe.train.mixed_precision
            )
            text_store = TextStore(latents.first_draw.store, identity)
        text = fill_text_cache(
            captions,
            components.tokenizers(),
            lambda ids: condition_chunked(components.family, encoders, ids, chunks),
            device=accelerator.device,
            autocast=accelerator.autocast,
            batch_size=max(batch, 32),
            log=log,
            chunks=chunks,
            store=text_store,
        )
    return latents, text
