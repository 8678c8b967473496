"""A tiny CLIP BPE tokenizer whose vocabulary comes from the world's captions."""

from __future__ import annotations

import os
import tempfile

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer

from adaptkit.embedded.world import caption_vocabulary

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


#: Prompt length in tokens (captions need ≤ 10; 77 would triple cross-attention cost).
MAX_LENGTH = 24


def build_tokenizer(extra_words: list[str] | None = None) -> CLIPTokenizer:
    """Train a byte-level BPE on the world's words and wrap it as a CLIPTokenizer.

    Every caption word becomes one token (``word</w>``); any other lower-case
    ASCII word still tokenises into characters, so unseen prompts do not fail.
    """
    words = caption_vocabulary() + list(extra_words or [])
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOS))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789"))
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        min_frequency=1,
        special_tokens=[BOS, EOS],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    # Repeat so every word is frequent enough to be merged into one token.
    bpe.train_from_iterator([" ".join(words)] * 10, trainer=trainer)
    model = bpe.model
    vocab: dict[str, int] = dict(sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]))
    # Single characters with the end-of-word suffix keep unknown words encodable.
    for ch in alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        with open(os.path.join(tmp, "merges.txt"), encoding="utf-8") as fh:
            merges = [tuple(line.split()) for line in fh.read().splitlines() if line and not line.startswith("#")]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH)
