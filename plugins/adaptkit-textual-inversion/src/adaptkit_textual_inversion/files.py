"""The files of a textual-inversion result.

- ``learned_embeds.safetensors`` (and ``learned_embeds_2.safetensors`` for SDXL's second encoder):
  ``{token: (1, width)}``, diffusers' format — ``pipe.load_textual_inversion(path)`` (with
  ``text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2`` for the second file);
- ``embedding.safetensors``: the A1111 / ComfyUI embedding — ``emb_params`` for one encoder, ``clip_l``
  and ``clip_g`` for SDXL's two — dropped into their ``embeddings/`` folder and named in a prompt;
- ``textual_inversion.json``: the token and which file belongs to which encoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit import UserError

if TYPE_CHECKING:
    import torch

INDEX = "textual_inversion.json"
DIFFUSERS_FILES = {"text_encoder": "learned_embeds.safetensors", "text_encoder_2": "learned_embeds_2.safetensors"}
A1111_FILE = "embedding.safetensors"
#: A1111's key for each encoder of a two-encoder (SDXL) embedding.
A1111_SDXL_KEYS = {"text_encoder": "clip_l", "text_encoder_2": "clip_g"}


def write_result(out_dir: Path, token: str, vectors: dict[str, "torch.Tensor"]) -> None:
    """Write ``vectors`` (encoder part -> (1, width)) for ``token`` in both formats, and the index."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    for part, vector in vectors.items():
        save_file({token: vector.contiguous()}, str(out_dir / DIFFUSERS_FILES[part]))
    if len(vectors) == 1:
        a1111 = {"emb_params": next(iter(vectors.values())).contiguous()}
    else:
        a1111 = {A1111_SDXL_KEYS[part]: vector.contiguous() for part, vector in vectors.items()}
    save_file(a1111, str(out_dir / A1111_FILE), metadata={"format": "pt"})
    index = {"token": token, "files": {part: DIFFUSERS_FILES[part] for part in vectors}}
    (out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def read_result(saved_dir: Path) -> tuple[str, dict[str, Path]]:
    """``(token, encoder part -> diffusers file)`` of a saved result; one-line UserErrors otherwise."""
    path = saved_dir / INDEX
    if not path.is_file():
        raise UserError(f"{saved_dir}: no {INDEX} (not a textual-inversion result folder)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        token, files = str(index["token"]), {part: saved_dir / name for part, name in index["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a textual-inversion index ({exc})") from exc
    missing = [str(file) for file in files.values() if not file.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: missing (the result folder is incomplete)")
    return token, files
