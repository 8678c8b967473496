"""A tiny SD 3.x pipeline built in code: two CLIP text encoders with projections (CLIP-L and CLIP-G
in SD 3.5), a tiny T5 encoder with a unigram tokenizer built in code (no Hub), a two-layer MMDiT
``SD3Transformer2DModel``, a 16-channel VAE with a shift factor, and a flow-matching scheduler.

For tests of the ``sd3`` family: it loads with ``StableDiffusion3Pipeline.from_pretrained`` offline
and samples at 64 px. Random weights from ``seed``; the tokenizers are the tiny test tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.testing.tiny_model import (
    IMAGE_SIZE,
    PROMPT_WORDS,
    build_tiny_tokenizer,
    build_tiny_vae,
    tiny_text_config,
)

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, StableDiffusion3Pipeline
    from transformers import T5EncoderModel, T5TokenizerFast

#: Widths of the two CLIP encoders; their pooled outputs are concatenated for the transformer.
TEXT_WIDTHS = (16, 32)
#: The transformer's text width (T5's in SD 3.5: 4096); the CLIP hidden states are zero-padded to it.
JOINT_WIDTH = 64
LATENT_CHANNELS = 16
#: T5's token window in ``StableDiffusion3Pipeline`` (its ``max_sequence_length`` default).
T5_TOKENS = 256


def build_tiny_t5_tokenizer(words: list[str] | None = None) -> "T5TokenizerFast":
    """A T5 (unigram, SentencePiece-style ``▁`` word starts) tokenizer in which every word of ``words``
    (default the tiny CLIP tokenizer's) is one token; other words spell out by letters. Deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    words = sorted({word.lower() for word in (words if words is not None else PROMPT_WORDS)})
    letters = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789,.!?'-") | {c for w in words for c in w})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + word, -1.0) for word in words] + [(c, -5.0) for c in letters]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=T5_TOKENS,
    )


def build_tiny_t5(tokenizer: "T5TokenizerFast", width: int) -> "T5EncoderModel":
    """A two-layer T5 encoder ``width`` wide for ``tokenizer``; random weights from the caller's RNG."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=width,
            d_kv=16,
            d_ff=2 * width,
            num_layers=2,
            num_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )


def build_tiny_16_channel_vae(scaling_factor: float, shift_factor: float) -> "AutoencoderKL":
    """The tiny VAE with 16 latent channels and a shift factor (SD 3.x's and Flux's kind), no quant convs;
    random weights from the caller's RNG."""
    return build_tiny_vae(
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def build_tiny_sd3_pipeline(seed: int = 0) -> "StableDiffusion3Pipeline":
    """The tiny SD 3.x pipeline, T5 included, with random weights drawn from ``seed`` (flow matching, shift 3)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    tokenizer = build_tiny_tokenizer()
    t5_tokenizer = build_tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=IMAGE_SIZE // 8,
            patch_size=2,
            in_channels=LATENT_CHANNELS,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=JOINT_WIDTH,
            caption_projection_dim=16,
            pooled_projection_dim=sum(TEXT_WIDTHS),
            out_channels=LATENT_CHANNELS,
            pos_embed_max_size=16,
        )
        vae = build_tiny_16_channel_vae(scaling_factor=1.5305, shift_factor=0.0609)
        text_encoder = CLIPTextModelWithProjection(tiny_text_config(tokenizer, TEXT_WIDTHS[0]))
        text_encoder_2 = CLIPTextModelWithProjection(tiny_text_config(tokenizer, TEXT_WIDTHS[1]))
        t5 = build_tiny_t5(t5_tokenizer, JOINT_WIDTH)
    from adaptkit.builtins.families.sd3 import sd3_pipeline

    return sd3_pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=build_tiny_tokenizer(),
        text_encoder_3=t5,
        tokenizer_3=t5_tokenizer,
    )


def save_tiny_sd3_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny SD 3.x pipeline and save it as a diffusers folder (safetensors) at ``path``."""
    path = Path(path)
    build_tiny_sd3_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path
