"""``content``: cosine similarity of base and adapted images (same prompt and seed) in DINOv2 or CLIP space."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from adaptkit.component import Metric
from adaptkit.evaluation.bootstrap import single_figure
from adaptkit.evaluation.context import EvalContext, Figure
from adaptkit.evaluation.encoders import DEFAULT_CLIP, DEFAULT_DINO
from adaptkit.hookspecs import hookimpl

from ._common import EncoderOptions, encoder, selected_pairs


class ContentOptions(EncoderOptions):
    """Options of ``content``."""

    encoder: Literal["dino", "clip"] = Field("dino", description="Embedding space: dino (DINOv2) or clip.")
    model: str | None = Field(  # type: ignore[assignment]
        None, description=f"Model: a Hub id or a local folder; default {DEFAULT_DINO} (dino) or {DEFAULT_CLIP} (clip)."
    )


class ContentMetric(Metric):
    """Content preservation: mean cosine similarity between the base and the adapted image of each
    pair (1 = the adapted model drew the same thing)."""

    name = "content"
    description = "Content preservation: DINOv2 (or CLIP) cosine between base and adapted images."
    Options = ContentOptions
    options: ContentOptions

    def compute(self, context: EvalContext) -> list[Figure]:
        o = self.options
        model = o.model or (DEFAULT_DINO if o.encoder == "dino" else DEFAULT_CLIP)
        pairs = selected_pairs(context, self.name, o.sets)
        enc = encoder(context, self.name, model, o.batch_size, kind=o.encoder)
        cosine = (enc.encode_images(pairs.base) * enc.encode_images(pairs.adapted)).sum(-1)
        return [
            single_figure(
                self.name, "content", cosine.tolist(), pairs.prompts,
                f"{o.encoder} ({model}) cosine similarity of base and adapted image, same prompt and seed",
                higher_is_better=True, n_resamples=o.n_resamples, seed=o.seed,
            )
        ]  # fmt: skip


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register ``content``."""
    register(ContentMetric)
