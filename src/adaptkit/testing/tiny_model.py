"""A tiny Stable Diffusion v1 pipeline, built in code with random weights, for tests.

The UNet and VAE keep the SD v1 block layout (4 levels, default block types,
``layers_per_block=2``) at small widths, so the single-file converters and adapter
target names behave as on a real SD v1 model; sampling 64 px images takes milliseconds.
Build it with :func:`build_tiny_pipeline`, or write it once with :func:`save_tiny_pipeline`
and load it through the same ``from_pretrained`` path as a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTokenizer

#: Widths of the tiny UNet's four levels (SD v1: 320, 640, 1280, 1280).
UNET_CHANNELS = (32, 32, 64, 64)
#: Widths of the tiny VAE's four levels (SD v1: 128, 256, 512, 512).
VAE_CHANNELS = (16, 16, 32, 32)
#: Text-encoder width = UNet cross-attention width (SD v1: 768).
TEXT_WIDTH = 32
#: Default image size in pixels (latents are 8x8).
IMAGE_SIZE = 64

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

#: Words the tiny tokenizer encodes as one token each; any other word still encodes, by characters.
PROMPT_WORDS = """
a an the of in on at with and or by for to from over under near into its his her their
photo photograph picture painting drawing sketch illustration cartoon comic render portrait
landscape style art artwork poster anime manga pixel watercolor oil ink pencil digital
realistic detailed sharp blurry high quality best masterpiece trending artstation cinematic
lighting light dark shadow shed face woman man girl boy child person people old young
astronaut horse riding mars moon sun sky cloud clouds rain snow night day sunset sunrise
city street house building room forest tree trees mountain mountains river lake sea ocean
beach desert field garden flower flowers grass water fire cat dog bird fish dragon robot car
red green blue yellow black white orange purple pink brown gray golden silver colorful bright
big small tiny large cute happy sad funny smiling standing sitting walking running flying
holding wearing eating reading looking playing hat dress shirt glasses hair eyes hand
new yorker caption simpsons naruto pokemon character characters creature monster
table chair window door book cup coffee food apple cake ship boat train plane space star stars
""".split()


def build_tiny_tokenizer(words: list[str] | None = None) -> "CLIPTokenizer":
    """A CLIP BPE tokenizer in which every word of ``words`` (default :data:`PROMPT_WORDS`) is one token.

    Deterministic (same words, same ids): the merges come from :func:`bpe_merges`, not from the
    ``tokenizers`` trainer, whose tie-breaking changes from one process to the next. Any other
    lower-case word still encodes, character by character.
    """
    from transformers import CLIPTokenizer

    words = sorted({word.lower() for word in (words if words is not None else PROMPT_WORDS)})
    merges = bpe_merges(words)
    alphabet = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789,.!?'-:;()\"&/") | {c for w in words for c in w})
    tokens = [BOS, EOS, *alphabet, *(c + "</w>" for c in alphabet), *(a + b for a, b in merges)]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges learnt from ``words`` (each counted once) until every word is one symbol.

    Plain BPE with CLIP's ``</w>`` end-of-word marker; ties go to the lexicographically first pair.
    """
    from collections import Counter

    pieces = [[*word[:-1], word[-1] + "</w>"] for word in words if word]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(pair for piece in pieces for pair in zip(piece, piece[1:], strict=False))
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        pieces = [_merge_pair(piece, best) if len(piece) > 1 else piece for piece in pieces]


def _merge_pair(piece: list[str], pair: tuple[str, str]) -> list[str]:
    merged, i = [], 0
    while i < len(piece):
        if i + 1 < len(piece) and (piece[i], piece[i + 1]) == pair:
            merged.append(pair[0] + pair[1])
            i += 2
        else:
            merged.append(piece[i])
            i += 1
    return merged


def build_tiny_pipeline(seed: int = 0) -> "StableDiffusionPipeline":
    """A tiny SD v1-layout pipeline with random weights drawn from ``seed`` (DDPM scheduler, no safety checker)."""
    return build_tiny_sd_layout(seed, {"attention_head_dim": 2}, "quick_gelu", "epsilon")


def build_tiny_sd_layout(
    seed: int, unet_options: dict[str, Any], hidden_act: str, prediction_type: str
) -> "StableDiffusionPipeline":
    """A tiny ``StableDiffusionPipeline`` (the SD v1 block layout) with ``unet_options`` on the UNet, the
    text encoder's ``hidden_act`` and the scheduler's ``prediction_type``: the SD 1.x and 2.x test models.
    Weights are drawn from ``seed`` in a fixed order (UNet, VAE, text encoder)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from adaptkit.builtins.families.sd1 import assemble_pipeline

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            block_out_channels=UNET_CHANNELS,
            layers_per_block=2,
            cross_attention_dim=TEXT_WIDTH,
            norm_num_groups=8,
            **unet_options,
        )
        vae = build_tiny_vae()
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, hidden_act=hidden_act))
    return assemble_pipeline(vae, text_encoder, tokenizer, unet, build_tiny_scheduler(prediction_type))


def build_tiny_vae(**overrides: Any) -> "AutoencoderKL":
    """The tiny VAE in the SD v1 block structure (4 levels), random weights from the global RNG;
    ``overrides`` change its ``AutoencoderKL`` settings (latent channels, scale, shift…)."""
    from diffusers import AutoencoderKL

    settings: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": VAE_CHANNELS,
        "layers_per_block": 2,
        "norm_num_groups": 8,
        "latent_channels": 4,
        "sample_size": IMAGE_SIZE,
    }
    return AutoencoderKL(**{**settings, **overrides})


def tiny_text_config(
    tokenizer: "CLIPTokenizer", width: int = TEXT_WIDTH, hidden_act: str = "quick_gelu"
) -> "CLIPTextConfig":
    """A two-layer CLIP text encoder config for ``tokenizer``, ``width`` wide (projection as wide);
    ``hidden_act`` ``"gelu"`` is OpenCLIP's (SD 2.x), ``"quick_gelu"`` OpenAI CLIP's (SD 1.x)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_act=hidden_act,
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        projection_dim=width,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_scheduler(prediction_type: str = "epsilon") -> "DDPMScheduler":
    """SD's training scheduler: 1000 scaled-linear DDPM steps, ``prediction_type`` (default epsilon)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        clip_sample=False,
        steps_offset=1,
    )


def save_tiny_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and save it as a diffusers folder (safetensors) at ``path``; return ``path``."""
    path = Path(path)
    build_tiny_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path


def save_tiny_single_file(path: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline's UNet, VAE and text encoder as one original-layout ``.safetensors`` file.

    Load it with ``StableDiffusionPipeline.from_single_file(path, config=<a saved tiny folder>)``:
    the folder gives the (tiny) architecture, tokenizer and scheduler.
    """
    from safetensors.torch import save_file

    from adaptkit.builtins.families.sd1 import StableDiffusion1
    from adaptkit.interop.original_layout import pipeline_to_original

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = pipeline_to_original(build_tiny_pipeline(seed), StableDiffusion1.single_file_text_encoders or {})
    save_file(state, str(path), metadata={"format": "pt"})
    return path
