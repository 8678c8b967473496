"""Captions longer than the text encoder's window, encoded in chunks (``[data] long_captions = "chunk"``)
as A1111 and kohya's sd-scripts (``--max_token_length``) do.

A caption's tokens are cut into ``chunks`` windows of ``model_max_length − 2`` tokens; each window gets
its own start and end tokens and padding and is encoded on its own, and the windows' hidden states are
concatenated along the sequence (the denoiser's cross-attention takes any length). A family's extra
inputs (SDXL's pooled embedding) come from the first window. With ``chunks = 1`` this is the plain
truncating tokenization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from adaptkit.component import Conditioning, ModelFamily
    from adaptkit.recipe import DataSection


def caption_chunks(data: "DataSection") -> int:
    """How many windows a caption is encoded in: ``max_caption_tokens / 75`` when chunking, else 1."""
    return data.max_caption_tokens // 75 if data.long_captions == "chunk" else 1


def check_chunking(data: "DataSection", components) -> None:
    """A one-line UserError when captions are to be chunked for a family with a non-CLIP text encoder."""
    from adaptkit.errors import UserError

    if caption_chunks(data) == 1:
        return
    for name, encoder in components.text_encoders().items():
        if not type(encoder).__name__.startswith("CLIPText"):
            raise UserError(
                f"data.long_captions = 'chunk': model family {components.family.name}'s {name} is a "
                f"{type(encoder).__name__}, which takes its own long window; use long_captions = 'truncate'"
            )


def tokenize_chunked(tokenizer, captions: list[str], chunks: int) -> torch.Tensor:
    """(batch, chunks · model_max_length) ids: each window ``[start] tokens… [end] [pad]…``."""
    window = tokenizer.model_max_length
    body = window - 2
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for tokens in tokenizer(captions, add_special_tokens=False, truncation=False).input_ids:
        tokens = tokens[: chunks * body]
        row = []
        for start in range(0, chunks * body, body):
            piece = tokens[start : start + body]
            row += [tokenizer.bos_token_id, *piece, tokenizer.eos_token_id] + [pad] * (body - len(piece))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


def condition_chunked(
    family: "ModelFamily", encoders: Sequence[torch.nn.Module], ids: Sequence[torch.Tensor], chunks: int
) -> "Conditioning":
    """``family.condition`` of each window, the hidden states concatenated; extra inputs from the first."""
    from adaptkit.component import Conditioning

    if chunks == 1:
        return family.condition(encoders, ids)
    windows = [tensor.chunk(chunks, dim=1) for tensor in ids]
    each = [family.condition(encoders, [w[i] for w in windows]) for i in range(chunks)]
    return Conditioning(torch.cat([c.hidden_states for c in each], dim=1), each[0].added)
