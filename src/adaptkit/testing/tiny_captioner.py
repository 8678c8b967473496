"""A tiny BLIP image-captioning model built in code (a word-piece tokenizer of a few words, random
weights), saved as a folder that ``AutoProcessor`` and ``AutoModelForImageTextToText`` load offline —
for tests of ``adaptkit caption``."""

from __future__ import annotations

from pathlib import Path

#: The tokenizer's words (after BERT's special tokens and BLIP's ``[DEC]`` start token).
WORDS = "a red star on white background blue circle black picture of cartoon cat dog".split()


def save_tiny_captioner(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny BLIP and its processor with random weights from ``seed``; save them at ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS]
    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        bos_token="[DEC]",
    )
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "encoder_hidden_size": 32,
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.bos_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {"hidden_size": 32, "image_size": 32, "patch_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision["intermediate_size"] = 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
