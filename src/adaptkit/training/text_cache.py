"""Cached text-encoder outputs: the frozen text encoder's conditioning for every caption of every row
(and for "" with caption dropout), computed once: all before the first step and held in memory, or
(with ``[data] cache_fill = "first-draw"``) each caption as a batch first draws it, kept on disk
beside the latents (:class:`TextStore`) and read back as drawn, so memory does not grow with the
dataset."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import torch

from adaptkit.component import Conditioning
from adaptkit.training.batches import tokenize_all
from adaptkit.training.example_infos import ExampleInfo
from adaptkit.training.latent_store import DiskStore


class TextStore:
    """Captions' conditioning in a :class:`DiskStore` (the latents' folder, under its size limit), keyed
    by ``identity`` (the text encoders, the family, tokenization and precision) and the caption."""

    def __init__(self, store: DiskStore, identity: str) -> None:
        self.store = store
        self.identity = identity

    def key(self, caption: str) -> str:
        return hashlib.blake2b(repr(("text", self.identity, caption)).encode(), digest_size=20).hexdigest()

    def get(self, caption: str) -> Conditioning | None:
        """The cached conditioning of ``caption``, or None (absent, or corrupt: then overwritten on put)."""
        tensors = self.store.get_tensors(self.key(caption), _is_conditioning)
        if tensors is None:
            return None
        added = {name.removeprefix(ADDED): value for name, value in tensors.items() if name.startswith(ADDED)}
        return Conditioning(tensors["hidden"], added or None)

    def put(self, caption: str, hidden: torch.Tensor, added: dict[str, torch.Tensor]) -> None:
        """Write ``caption``'s conditioning (one caption's tensors, no batch axis)."""
        tensors = {"hidden": hidden} | {ADDED + name: value for name, value in added.items()}
        self.store.put_tensors(self.key(caption), tensors, "text")


def text_identity(
    family: str, encoders: Sequence[torch.nn.Module], tokenizers: Sequence, chunks: int, precision
) -> str:
    """What a caption's cached conditioning depends on besides the caption: the family's conditioning,
    the text encoders (:func:`~adaptkit.training.fingerprints.module_fingerprint`), the tokenization and the
    precision."""
    from adaptkit.training.fingerprints import module_fingerprint

    lengths = [getattr(tokenizer, "model_max_length", None) for tokenizer in tokenizers]
    return repr((family, [module_fingerprint(encoder) for encoder in encoders], lengths, chunks, str(precision)))


#: The prefix of a family's extra conditioning inputs in a :class:`TextStore` entry.
ADDED = "added."


def _is_conditioning(tensors: dict[str, torch.Tensor]) -> bool:
    return "hidden" in tensors and all(name == "hidden" or name.startswith(ADDED) for name in tensors)


class TextCache:
    """The denoiser's conditioning by caption (hidden states, and the family's extra inputs if any).

    With ``encode`` (``captions -> Conditioning``, run inside the step's autocast) and a ``store``, a
    batch's captions are read from the store, and one not there yet is encoded alone and written: its
    conditioning does not depend on the captions beside it, so every process (and a run on hardware
    whose batched encodes are not batch-invariant) computes the same one. Nothing is held in memory.
    """

    def __init__(
        self,
        hidden: dict[str, torch.Tensor],
        added: dict[str, dict[str, torch.Tensor]],
        encode: Callable[[list[str]], Conditioning] | None = None,
        store: TextStore | None = None,
    ) -> None:
        self.hidden = hidden
        self.added = added
        self.encode = encode
        self.store = store
        #: captions encoded into the store by this process, and first lookups it served
        self.encoded = 0
        self.reused = 0
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self.hidden)

    def cached(self) -> dict[str, torch.Tensor]:
        """Every cached caption's hidden states: all of them, or (with a store) those looked up so far,
        read back from disk."""
        if self.store is None:
            return dict(self.hidden)
        found = {caption: self.store.get(caption) for caption in self._seen}
        return {caption: entry.hidden_states for caption, entry in found.items() if entry is not None}

    def add(self, captions: list[str], output: Conditioning) -> None:
        """Keep ``output`` (the conditioning of ``captions``, in order) on the CPU."""
        self.hidden.update(zip(captions, output.hidden_states.cpu()))
        extra = {key: value.cpu() for key, value in (output.added or {}).items()}
        self.added.update(
            {caption: {key: value[i] for key, value in extra.items()} for i, caption in enumerate(captions)}
        )

    def lookup(self, captions: Sequence[str], device) -> Conditioning:
        """The stacked conditioning of a batch of captions."""
        if self.store is not None:
            return self._lookup_stored(captions, device)
        hidden = torch.stack([self.hidden[caption] for caption in captions]).to(device, non_blocking=True)
        rows = [self.added[caption] for caption in captions]
        added = {key: torch.stack([row[key] for row in rows]).to(device, non_blocking=True) for key in rows[0]}
        return Conditioning(hidden, added or None)

    def _lookup_stored(self, captions: Sequence[str], device) -> Conditioning:
        assert self.store is not None and self.encode is not None
        found: dict[str, Conditioning] = {}
        for caption in dict.fromkeys(captions):
            cached = self.store.get(caption)
            if cached is None:
                with torch.no_grad():
                    output = self.encode([caption])
                extra = {key: value[0].cpu() for key, value in (output.added or {}).items()}
                cached = Conditioning(output.hidden_states[0].cpu(), extra or None)
                self.store.put(caption, cached.hidden_states, extra)
                self.encoded += 1
            elif caption not in self._seen:
                self.reused += 1
            self._seen.add(caption)
            found[caption] = cached
        rows = [found[caption] for caption in captions]
        hidden = torch.stack([row.hidden_states for row in rows]).to(device, non_blocking=True)
        added = {
            key: torch.stack([row.added[key] for row in rows]).to(device, non_blocking=True)
            for key in (rows[0].added or {})
        }
        return Conditioning(hidden, added or None)


def fill_text_cache(
    captions: Sequence[str] | None,
    tokenizers: Sequence,
    encode: Callable[[Sequence[torch.Tensor]], Conditioning],
    *,
    device: torch.device,
    autocast: Callable[[], object],
    batch_size: int = 32,
    log: Callable[[str], None] = print,
    chunks: int = 1,
    store: TextStore | None = None,
) -> TextCache:
    """Encode every distinct caption once with ``encode`` (the family's conditioning of one ids
    tensor per text encoder), tokenized with ``tokenizers`` (in ``chunks`` windows) as the training
    batches are; ``captions=None``: none now, each as a batch first looks it up, kept in ``store``."""
    started = time.perf_counter()

    def encode_captions(chunk: list[str]) -> Conditioning:
        return encode([ids.to(device) for ids in tokenize_all(tokenizers, chunk, chunks)])

    if captions is None:
        assert store is not None
        log(f"cached text: captions read from {store.store.directory} or encoded into it as first drawn")
        return TextCache({}, {}, encode_captions, store)
    unique = list(dict.fromkeys(captions))
    cache = TextCache({}, {})
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        with torch.no_grad(), autocast():
            cache.add(chunk, encode_captions(chunk))
    log(f"cached text: {len(unique)} captions in {time.perf_counter() - started:.1f} s")
    return cache


def captions_to_cache(infos: Sequence[ExampleInfo], caption_dropout: float) -> list[str]:
    """Every caption of every row, plus "" when caption dropout can pick it."""
    captions = [caption for info in infos for caption in info.captions]
    return captions + [""] if caption_dropout > 0 else captions
