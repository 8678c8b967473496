"""Cached text-encoder outputs: the frozen text encoder's conditioning for every caption of every row
(and for "" with caption dropout), computed once, in memory: all before the first step, or (with
``[data] cache_fill = "first-draw"``) each batch's new captions as the batch is drawn."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from adaptkit.component import Conditioning
from adaptkit.training.batches import ExampleInfo, tokenize_all


class TextCache:
    """The denoiser's conditioning by caption (hidden states, and the family's extra inputs if any).

    With ``encode`` (``captions -> Conditioning``, run inside the step's autocast), a caption not
    cached yet is encoded when a batch first looks it up, with the batch's other new captions.
    """

    def __init__(
        self,
        hidden: dict[str, torch.Tensor],
        added: dict[str, dict[str, torch.Tensor]],
        encode: Callable[[list[str]], Conditioning] | None = None,
    ) -> None:
        self.hidden = hidden
        self.added = added
        self.encode = encode

    def __len__(self) -> int:
        return len(self.hidden)

    def add(self, captions: list[str], output: Conditioning) -> None:
        """Keep ``output`` (the conditioning of ``captions``, in order) on the CPU."""
        self.hidden.update(zip(captions, output.hidden_states.cpu()))
        extra = {key: value.cpu() for key, value in (output.added or {}).items()}
        self.added.update(
            {caption: {key: value[i] for key, value in extra.items()} for i, caption in enumerate(captions)}
        )

    def lookup(self, captions: Sequence[str], device) -> Conditioning:
        """The stacked conditioning of a batch of captions."""
        if self.encode is not None:
            missing = [caption for caption in dict.fromkeys(captions) if caption not in self.hidden]
            if missing:
                with torch.no_grad():
                    self.add(missing, self.encode(missing))
        hidden = torch.stack([self.hidden[caption] for caption in captions]).to(device, non_blocking=True)
        rows = [self.added[caption] for caption in captions]
        added = {key: torch.stack([row[key] for row in rows]).to(device, non_blocking=True) for key in rows[0]}
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
) -> TextCache:
    """Encode every distinct caption once with ``encode`` (the family's conditioning of one ids
    tensor per text encoder), tokenized with ``tokenizers`` (in ``chunks`` windows) as the training
    batches are; ``captions=None``: none now, each as a batch first looks it up."""
    started = time.perf_counter()

    def encode_captions(chunk: list[str]) -> Conditioning:
        return encode([ids.to(device) for ids in tokenize_all(tokenizers, chunk, chunks)])

    if captions is None:
        log("cached text: captions encoded as batches first draw them")
        return TextCache({}, {}, encode_captions)
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
