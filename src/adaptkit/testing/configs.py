"""The configs of real architectures shipped as JSON (``adaptkit/testing/<architecture>/<component>.json``),
from which :mod:`~adaptkit.testing.sd15` and :mod:`~adaptkit.testing.sdxl_random` build random-weight models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import CLIPTextConfig, CLIPTokenizer

ROOT = Path(__file__).resolve().parent


def architecture_config(architecture: str, component: str) -> dict[str, Any]:
    """The shipped config of ``component`` (``unet``, ``vae``, ``text_encoder``…) of ``architecture``
    (``sd15``, ``sdxl``)."""
    return json.loads((ROOT / architecture / f"{component}.json").read_text(encoding="utf-8"))


def text_config(architecture: str, component: str, tokenizer: "CLIPTokenizer") -> "CLIPTextConfig":
    """A shipped CLIP text-encoder config with ``tokenizer``'s special token ids."""
    from transformers import CLIPTextConfig

    config = architecture_config(architecture, component)
    config.update(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return CLIPTextConfig(**config)
