"""Cached VAE latents, each computed once (and when), and the cache settings of a run.

Latents: the VAE's posterior (mean and std) of every image — both mirror images with
``random_flip`` — is stored, not a sample, so each step still draws its own latents from the
step's generator: cached training sees the same latents as uncached training (up to the VAE's
numerical determinism across batch compositions). The posteriors go to disk, one safetensors
file per entry, in ``[data] cache_dir`` or, when the recipe leaves it unset, the user cache
folder (:mod:`adaptkit.training.cache_folder`); ``cache_dir = ""`` keeps them in memory only.
Entries are keyed by the image's pixel content, the output size, the flip, the crop and
interpolation, the precision and the VAE's identity (config + weights hash), so a second run (or
another recipe on the same images) reuses them, and a changed VAE or resolution misses. An
entry that cannot be read (a torn or garbage file) is recomputed and overwritten, and counted in
one printed line; a failed write (a full disk) ends the run with one
:class:`~adaptkit.training.latent_store.CacheWriteError`
line and leaves no partial file. One line says how many latents were reused and how many
encoded, at what time per image.

When: with latents on disk, ``[data] cache_fill = "first-draw"`` (the default) looks nothing up
before the first step: each batch reads its posteriors from disk and encodes the ones not cached
yet (:class:`FirstDraw`: one ``vae.encode`` of the batch's missing images, as an uncached step
would; with several processes, each image alone, so whichever process first draws an image
encodes the same posterior), so training starts at once, a run never decodes, hashes or encodes an
image it does not draw, and no posterior is held in memory (the disk and the page cache hold them).
Each entry is written before the step goes on, so a resumed run reads every posterior the
interrupted one encoded. Otherwise (memory only, or ``"upfront"``) everything is encoded before the
first step and held in memory.

Text embeddings are cached by :mod:`adaptkit.training.text_cache` (in memory, or with first-draw in this
folder too).

Several processes filling up front: each process encodes its share of the missing entries; on disk it
writes them and all read them back, in memory the shares are exchanged
(``accelerate.utils.gather_object``), so N processes encode a dataset about N times faster.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adaptkit.data.pipeline import ImagePipeline
from adaptkit.data.tags import varies_per_step
from adaptkit.errors import UserError
from adaptkit.recipe import DataSection
from adaptkit.training.cache_folder import cache_limit, default_latent_dir
from adaptkit.training.example_infos import ExampleInfo
from adaptkit.training.fingerprints import module_identity
from adaptkit.training.latent_store import DiskStore

Size = tuple[int, int]


@dataclass(frozen=True)
class CacheSettings:
    """What is cached for a run (after resolving "auto"): ``directory`` holds the latents (None:
    in memory), ``limit`` is its size limit in bytes (None without a directory); ``first_draw``:
    latents not cached yet are encoded as batches first draw them (needs a directory)."""

    latents: bool
    text: bool
    directory: Path | None
    limit: int | None = None
    first_draw: bool = False


def cache_settings(data: DataSection, trains_text_encoder: bool, method: str) -> CacheSettings:
    """Resolve ``cache_latents`` / ``cache_text``: "auto" is on where correct; ``true`` where incorrect is refused."""
    if data.cache_latents is True and not data.center_crop:
        raise UserError(
            "data.cache_latents = true: data.center_crop = false draws a new random crop every step, which a "
            "cache cannot hold; set data.center_crop = true, or cache_latents = 'auto' or false"
        )
    if data.cache_text is True and trains_text_encoder:
        raise UserError(
            f"data.cache_text = true: method {method!r} trains the text encoder, so its outputs change every "
            "step; set data.cache_text = 'auto' or false"
        )
    if data.cache_text is True and varies_per_step(data):
        raise UserError(
            "data.cache_text = true: data.shuffle_tags / tag_dropout make a new caption every step, which a "
            "cache cannot hold; set data.cache_text = 'auto' or false"
        )
    latents = data.center_crop if data.cache_latents == "auto" else bool(data.cache_latents)
    fixed_text = not trains_text_encoder and not varies_per_step(data)
    text = fixed_text if data.cache_text == "auto" else bool(data.cache_text)
    directory = latent_directory(data.cache_dir)
    on_disk = latents and directory is not None
    first_draw = on_disk and data.cache_fill == "first-draw"
    return CacheSettings(latents, text, directory, cache_limit() if on_disk else None, first_draw)


def latent_directory(cache_dir: str | None) -> Path | None:
    """The latents' folder for ``[data] cache_dir``: unset → the user cache folder's, "" → None (in memory)."""
    if cache_dir is None:
        return default_latent_dir()
    return Path(cache_dir).expanduser() if cache_dir else None


# --------------------------------------------------------------------------- latents


def latent_scaling(vae) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` of a VAE: latents are ``(sample − shift) · scale`` (SD 3.x and
    Flux VAEs have a shift; SD 1.x/2.x/SDXL none)."""
    return float(vae.config.scaling_factor), float(vae.config.get("shift_factor") or 0.0)


def scale_latents(sample: torch.Tensor, scaling: tuple[float, float]) -> torch.Tensor:
    """A VAE sample as the denoiser's latents (float32): ``(sample − shift) · scale``."""
    scale, shift = scaling
    return (sample.float() - shift) * scale


Task = tuple[int, bool]
Posterior = tuple[torch.Tensor, torch.Tensor | None]


class LatentCache:
    """VAE posteriors by (example index, flipped); :meth:`sample` draws a step's latents from them.

    With :attr:`first_draw` set, a posterior not cached yet is encoded (and written to disk) when a
    batch first draws it, instead of before the first step.
    """

    def __init__(self, scaling: tuple[float, float]) -> None:
        self.scaling = scaling
        self.entries: dict[Task, Posterior] = {}
        #: corrupt entries of the disk cache that were recomputed and overwritten
        self.corrupt = 0
        #: posteriors read from the disk cache, and encoded by the fill (by every process together)
        self.reused = 0
        self.encoded = 0
        #: seconds the fill spent encoding (and, with several processes, waiting for the others' shares)
        self.encode_seconds = 0.0
        self.first_draw: FirstDraw | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def ms_per_encoded_image(self) -> float | None:
        """Milliseconds per posterior encoded so far, up front or as first drawn (None: none encoded)."""
        encoded, seconds = self.encoded, self.encode_seconds
        if self.first_draw is not None:
            encoded, seconds = self.first_draw.encoded, self.first_draw.seconds
        return 1000 * seconds / encoded if encoded else None

    def posteriors(self, tasks: Sequence[Task]) -> list[Posterior]:
        """The posteriors of ``tasks``: held in memory, or (first-draw) read from disk or encoded now."""
        if self.first_draw is None:
            return [self.entries[task] for task in tasks]
        found = self.first_draw.fetch(tasks)
        return [found[task] for task in tasks]

    def sample(self, indices: Sequence[int], flips: Sequence[bool], generator: torch.Generator, device) -> torch.Tensor:
        """Scaled latents for a batch, drawn exactly as ``vae.encode(x).latent_dist.sample(generator)`` would."""
        from diffusers.utils.torch_utils import randn_tensor

        tasks = [(index, bool(flip)) for index, flip in zip(indices, flips)]
        pairs = self.posteriors(tasks)
        mean = torch.stack([pair[0] for pair in pairs]).to(device, non_blocking=True)
        if pairs[0][1] is None:  # a deterministic posterior (e.g. an identity distribution)
            return scale_latents(mean, self.scaling)
        std = torch.stack([pair[1] for pair in pairs]).to(device, non_blocking=True)
        noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return scale_latents(mean + std * noise, self.scaling)


@dataclass(frozen=True)
class LatentJob:
    """What to encode: ``examples`` (indexable, ``.image``), their infos, per-index output size, flips."""

    examples: Sequence
    infos: Sequence[ExampleInfo]
    sizes: Sequence[Size]
    flips: tuple[bool, ...]
    pipeline: ImagePipeline
    precision: str


@dataclass
class FirstDraw:
    """A batch's posteriors, looked up when it is drawn: read from ``store``, or, for the ones not cached
    yet, encoded in one batch (as an uncached step would) and written before the step goes on. Called
    inside the training step's autocast. Keys are computed as examples are first drawn (the image's
    pixel digest comes from its first decode), so nothing is read or hashed up front."""

    job: LatentJob
    vae: torch.nn.Module
    identity: str
    store: DiskStore
    device: torch.device
    batch_size: int
    #: posteriors encoded so far, and the seconds that took; first draws served from disk
    encoded: int = 0
    seconds: float = 0.0
    reused: int = 0
    keys: dict[Task, str] = field(default_factory=dict)
    #: every (index, flip) drawn so far
    drawn: set[Task] = field(default_factory=set)

    def key(self, task: Task) -> str:
        """``task``'s disk-cache key (see :func:`latent_keys`)."""
        key = self.keys.get(task)
        if key is None:
            key = self.keys[task] = latent_keys(self.job, [task], self.identity)[task]
        return key

    def fetch(self, tasks: Sequence[Task]) -> dict[Task, Posterior]:
        """The posterior of each distinct task: from disk, or encoded now (and written)."""
        found: dict[Task, Posterior] = {}
        missing = []
        for task in dict.fromkeys(tasks):
            entry = self.store.get(self.key(task))
            if entry is None:  # absent or corrupt: encoded (again) and written over a corrupt file
                missing.append(task)
                continue
            found[task] = entry
            if task not in self.drawn:
                self.reused += 1
        if missing:
            started = time.perf_counter()
            for task, mean, std in _encode(
                self.job, missing, self.vae, self.device, contextlib.nullcontext, self.batch_size
            ):
                self.store.put(self.key(task), mean, std)
                found[task] = (mean, std)
            self.encoded += len(missing)
            self.seconds += time.perf_counter() - started
        self.drawn.update(found)
        return found

    def counts(self) -> torch.Tensor:
        """``(reused, encoded, seconds)``, to sum over processes for :meth:`line`."""
        return torch.tensor([self.reused, self.encoded, self.seconds], dtype=torch.float64)

    def line(self, totals: Sequence[float] | None = None) -> str:
        """``cache: 3 latents reused from DIR and 12 encoded as first drawn at 8.3 ms per image``, from
        this process's :meth:`counts` or ``totals`` (every process's, summed)."""
        reused, encoded, seconds = (
            (int(totals[0]), int(totals[1]), float(totals[2])) if totals else self.counts().tolist()
        )
        each = f" at {1000 * seconds / encoded:.1f} ms per image" if encoded else ""
        corrupt = len(self.store.corrupt)
        again = (
            f" ({corrupt} corrupt {'entry' if corrupt == 1 else 'entries'} recomputed and overwritten)"
            if corrupt
            else ""
        )
        return (
            f"cache: {int(reused)} latents reused from {self.store.directory} and {int(encoded)} encoded "
            f"as first drawn{each}{again}"
        )


def fill_latent_cache(
    job: LatentJob,
    vae: torch.nn.Module,
    *,
    device: torch.device,
    autocast: Callable[[], object],
    batch_size: int,
    store: DiskStore | None = None,
    shard: tuple[int, int] = (0, 1),
    wait: Callable[[], None] = lambda: None,
    gather: Callable[[list], list] = lambda share: share,
    log: Callable[[str], None] = print,
    first_draw: bool = False,
) -> LatentCache:
    """Encode every (image, flip) of ``job`` once (or read it from ``store``) into a :class:`LatentCache`.

    ``shard = (rank, count)``: this process encodes every ``count``-th missing entry from ``rank``;
    ``wait`` is the barrier after writing to ``store``; ``gather`` returns every process's share
    of in-memory entries (all processes call it with their own list). ``log`` hears one line:
    how many posteriors were reused and encoded, and the encoding time per image.
    ``first_draw`` (with a ``store``): look nothing up now; batches read or encode their posteriors
    as they are drawn (:class:`FirstDraw`), each process its own.
    """
    started = time.perf_counter()
    cache = LatentCache(latent_scaling(vae))
    rank, count = shard
    if store is not None and first_draw:
        # Several processes: each image alone, so an image two processes first draw in one step (across
        # an epoch's end) is encoded alike by both, and the posterior on disk does not depend on which won.
        alone = batch_size if count == 1 else 1
        cache.first_draw = FirstDraw(job, vae, module_identity(vae), store, device, alone)
        log(
            f"cache: latents read from {store.directory} or encoded into it as first drawn "
            f"({len(job.infos)} images × {len(job.flips)} flip(s), {time.perf_counter() - started:.1f} s)"
        )
        return cache
    tasks = [(index, flip) for index in range(len(job.infos)) for flip in job.flips]
    encoding = 0.0  # seconds spent encoding (and waiting for the other processes' shares)
    if store is not None:
        keys = latent_keys(job, tasks, module_identity(vae))
        missing = []  # absent or corrupt: encoded (again) and written, over a corrupt file
        for task in tasks:
            entry = store.get(keys[task])
            if entry is None:
                missing.append(task)
            else:
                cache.entries[task] = entry
        corrupt = sum(store.path(keys[task]) in store.corrupt for task in missing)
        if corrupt:
            log(
                f"latent cache: {corrupt} corrupt {'entry' if corrupt == 1 else 'entries'} in {store.directory} "
                "recomputed and overwritten"
            )
        mark = time.perf_counter()
        for task, mean, std in _encode(job, missing[rank::count], vae, device, autocast, batch_size):
            store.put(keys[task], mean, std)
        wait()  # every process has written its share
        encoding += time.perf_counter() - mark
        for task in missing:
            entry = store.get(keys[task])
            if entry is not None:
                cache.entries[task] = entry
        cache.reused = len(tasks) - len(missing)
        cache.corrupt = corrupt
    mark = time.perf_counter()
    pending = [task for task in tasks if task not in cache.entries]  # normally the same in every process
    if count > 1:
        share = _gather_shares(
            gather, lambda: list(_encode(job, pending[rank::count], vae, device, autocast, batch_size)), rank
        )
    else:
        share = list(_encode(job, pending, vae, device, autocast, batch_size))
    for task, mean, std in share:
        cache.entries[task] = (mean, std)
    leftover = [task for task in tasks if task not in cache.entries]  # what no other process provided
    for task, mean, std in _encode(job, leftover, vae, device, autocast, batch_size):
        cache.entries[task] = (mean, std)
    encoding += time.perf_counter() - mark
    cache.encoded = len(tasks) - cache.reused
    cache.encode_seconds = encoding
    log(fill_line(cache, store, encoding, f"{len(job.infos)} images × {len(job.flips)} flip(s)", started))
    return cache


def latent_keys(job: LatentJob, tasks: Sequence[tuple[int, bool]], identity: str) -> dict[tuple[int, bool], str]:
    """Each task's disk-cache key: the VAE's ``identity``, the image's content digest, its output
    size, the flip, the crop and interpolation, and the precision."""
    pipe, keys = job.pipeline, {}
    for index, flip in tasks:
        parts = (identity, job.infos[index].digest, job.sizes[index], flip, pipe.center_crop, pipe.interpolation)
        keys[(index, flip)] = hashlib.blake2b(repr((*parts, job.precision)).encode(), digest_size=20).hexdigest()
    return keys


def fill_line(cache: LatentCache, store: DiskStore | None, encoding: float, what: str, started: float) -> str:
    """The fill's one line: ``cache: 12 latents reused from DIR, 0 encoded (6 images × 2 flip(s), 0.1 s)``."""
    each = f" at {1000 * encoding / cache.encoded:.1f} ms per image" if cache.encoded else ""
    if store is None:
        counts = f"{cache.encoded} latents encoded{each}, in memory only"
    else:
        counts = f"{cache.reused} latents reused from {store.directory}, {cache.encoded} encoded{each}"
    return f"cache: {counts} ({what}, {time.perf_counter() - started:.1f} s)"


def _gather_shares(gather: Callable[[list], list], encode_share: Callable[[], list], rank: int) -> list:
    """Every process's encoded share, or the same error on every process if one of them failed.

    A process whose share raises still joins the gather (with a failure marker instead of
    entries), so the others fail with its message instead of waiting in the collective until
    the distributed timeout; the failing process re-raises its own exception, the others a
    :class:`UserError` if it was one (a user mistake, such as an unreadable image) or else a
    RuntimeError.
    """
    try:
        share, failure = encode_share(), None
    except Exception as exc:  # re-raised below, after the others have heard of it
        lines = exc.lines if isinstance(exc, UserError) else [f"process {rank}: {type(exc).__name__}: {exc}"]
        share, failure = [(None, lines, isinstance(exc, UserError))], exc
    gathered = gather(share)
    if failure is not None:
        raise failure
    for task, lines, user_mistake in gathered:
        if task is None:
            if user_mistake:
                raise UserError(*lines)
            raise RuntimeError(f"encoding the latent cache failed in another process ({lines[0]})")
    return gathered


def _encode(job: LatentJob, tasks: list[tuple[int, bool]], vae, device, autocast, batch_size: int):
    """Yield ``(task, mean, std)`` on the CPU for ``tasks``, batched among images of one output size."""
    by_size: dict[Size, list[tuple[int, bool]]] = {}
    for task in tasks:
        by_size.setdefault(job.sizes[task[0]], []).append(task)
    for size, group in by_size.items():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            pixels = torch.stack(
                [job.pipeline(job.examples[index].image, size=size, flip=flip).pixel_values for index, flip in chunk]
            )
            with torch.no_grad(), autocast():
                posterior = vae.encode(pixels.to(device, dtype=vae.dtype)).latent_dist
            std = getattr(posterior, "std", None)
            mean = (posterior.mean if std is not None else posterior.sample()).cpu()
            std = std.cpu() if std is not None else None
            for row, task in enumerate(chunk):  # clones: a row view would keep (and pickle) the whole batch
                yield task, mean[row].clone(), std[row].clone() if std is not None else None
