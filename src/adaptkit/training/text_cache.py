"""Cached text-encoder outputs: the frozen text encoder's conditioning for every caption of every row
(and for "" with caption dropout), computed once, in memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from adaptkit.component import Conditioning
from adaptkit.training.batches import ExampleInfo, tokenize_all


class TextCache:
    """The denoiser's conditioning by caption (hidden states, and the family's extra inputs if any)."""

    def __init__(self, hidden: dict[str, torch.Tensor], added: dict[str, dict[str, torch.Tensor]]) -> None:
        self.hidden = hidden
        self.added = added

    def __len__(self) -> int:
        return len(self.hidden)

    def lookup(self, captions: Sequence[str], device) -> Conditioning:
        """The stacked conditioning of a batch of captions."""
        hidden = torch.stack([self.hidden[caption] for caption in captions]).to(device, non_blocking=True)
        rows = [self.added[caption] for caption in captions]
        added = {key: torch.stack([row[key] for row in rows]).to(device, non_blocking=True) for key in rows[0]}
        return Conditioning(hidden, added or None)


def fill_text_cache(
    captions: Sequence[str],
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
    batches are."""
    started = time.perf_counter()
    unique = list(dict.fromkeys(captions))
    hidden: dict[str, torch.Tensor] = {}
    added: dict[str, dict[str, torch.Tensor]] = {}
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        with torch.no_grad(), autocast():
            output = encode([ids.to(device) for ids in tokenize_all(tokenizers, chunk, chunks)])
        hidden.update(zip(chunk, output.hidden_states.cpu()))
        extra = {key: value.cpu() for key, value in (output.added or {}).items()}
        added.update({caption: {key: value[i] for key, value in extra.items()} for i, caption in enumerate(chunk)})
    log(f"cached text: {len(unique)} captions in {time.perf_counter() - started:.1f} s")
    return TextCache(hidden, added)


def captions_to_cache(infos: Sequence[ExampleInfo], caption_dropout: float) -> list[str]:
    """Every caption of every row, plus "" when caption dropout can pick it."""
    captions = [caption for info in infos for caption in info.captions]
    return captions + [""] if caption_dropout > 0 else captions
