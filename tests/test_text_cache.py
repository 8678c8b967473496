"""The text cache filled as batches first draw their captions: kept on disk, each caption encoded alone."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from adaptkit.component import Conditioning
from adaptkit.training.fingerprints import module_fingerprint
from adaptkit.training.latent_store import DiskStore
from adaptkit.training.text_cache import TextStore, fill_text_cache


class FakeEncoder:
    """Conditioning from the caption's length (hidden) and its first letter (an added input), counting calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, captions: list[str]) -> Conditioning:
        self.calls.append(list(captions))
        hidden = torch.stack([torch.full((3, 2), float(len(c))) for c in captions])
        pooled = torch.stack([torch.tensor([float(ord(c[0]) if c else 0)]) for c in captions])
        return Conditioning(hidden, {"text_embeds": pooled})


def _lazy_cache(folder: Path, encoder: FakeEncoder):
    """A first-draw text cache over ``folder`` whose encode is ``encoder`` (ids are the captions here)."""
    store = TextStore(DiskStore(folder), identity="test")
    cache = fill_text_cache(
        None, [], lambda ids: None, device=torch.device("cpu"), autocast=contextlib.nullcontext, log=lambda _: None,
        store=store,
    )  # fmt: skip
    cache.encode = encoder  # the captions themselves, not token ids
    return cache


def test_captions_are_encoded_alone_once_and_read_back_by_a_later_run(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    first = _lazy_cache(tmp_path, encoder)
    batch = first.lookup(["a cat", "dog", "a cat"], "cpu")
    assert encoder.calls == [["a cat"], ["dog"]]  # each new caption alone, a repeated one once
    assert batch.hidden_states.shape == (3, 3, 2) and batch.hidden_states[:, 0, 0].tolist() == [5.0, 3.0, 5.0]
    assert batch.added["text_embeds"][:, 0].tolist() == [ord("a"), ord("d"), ord("a")]
    assert not first.hidden and (first.encoded, first.reused) == (2, 0)  # nothing held in memory

    second = _lazy_cache(tmp_path, FakeEncoder())
    again = second.lookup(["dog", "a cat"], "cpu")
    assert second.encode.calls == [] and (second.encoded, second.reused) == (0, 2)
    assert torch.equal(again.hidden_states, batch.hidden_states[[1, 0]])
    assert torch.equal(again.added["text_embeds"], batch.added["text_embeds"][[1, 0]])


def test_a_corrupt_text_entry_is_encoded_again_and_overwritten(tmp_path: Path) -> None:
    first = _lazy_cache(tmp_path, FakeEncoder())
    first.lookup(["a cat"], "cpu")
    entry = first.store.store.path(first.store.key("a cat"))
    entry.write_bytes(b"not a safetensors file")
    second = _lazy_cache(tmp_path, FakeEncoder())
    second.lookup(["a cat"], "cpu")
    assert second.encode.calls == [["a cat"]] and entry in second.store.store.corrupt
    third = _lazy_cache(tmp_path, FakeEncoder())
    assert third.lookup(["a cat"], "cpu").hidden_states[0, 0, 0].item() == 5.0 and third.encode.calls == []


def test_another_text_encoder_or_tokenization_misses(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    key = TextStore(store, "encoders A").key("a cat")
    assert TextStore(store, "encoders B").key("a cat") != key and TextStore(store, "encoders A").key("a dog") != key
    linear = torch.nn.Linear(4, 4)
    before = module_fingerprint(linear)
    assert module_fingerprint(linear) == before  # stable
    with torch.no_grad():
        linear.weight.add_(1e-3)  # a fine-tune changes the weights: the fingerprint sees it
    assert module_fingerprint(linear) != before
