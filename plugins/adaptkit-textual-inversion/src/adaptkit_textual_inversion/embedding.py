"""A token embedding with new rows that train while the original ones stay frozen."""

from __future__ import annotations

import torch


class ExtendedEmbedding(torch.nn.Module):
    """``base`` (frozen) for ids below its size, the trainable ``vectors`` for the ids after it.

    Only ``vectors`` is a parameter with gradients, so the optimizer (weight decay included) can
    change nothing else; a token's row is exactly what diffusers' ``load_textual_inversion`` writes
    into a resized embedding, so the two give the same text states.
    """

    def __init__(self, base: torch.nn.Embedding, vectors: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.vectors = torch.nn.Parameter(vectors.detach().clone().float())

    @property
    def num_embeddings(self) -> int:
        return self.base.num_embeddings + len(self.vectors)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table (the original rows, then the new), for code that reads it."""
        return torch.cat([self.base.weight, self.vectors.to(self.base.weight.dtype)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        size = self.base.num_embeddings
        out = self.base(ids.clamp(max=size - 1))
        extra = self.vectors[(ids - size).clamp(min=0, max=len(self.vectors) - 1)].to(out.dtype)
        return torch.where((ids >= size).unsqueeze(-1), extra, out)
