"""``clip_score``: CLIPScore (100 · max(cos, 0)) of image and prompt, adapted − base, on the general prompts."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from adaptkit.component import Metric
from adaptkit.evaluation.bootstrap import paired_figure
from adaptkit.evaluation.context import EvalContext, Figure, PromptSetName
from adaptkit.hookspecs import hookimpl

from ._common import EncoderOptions, encoder, selected_pairs


class ClipScoreOptions(EncoderOptions):
    """Options of ``clip_score``; scores the general prompts by default."""

    sets: list[PromptSetName] | None = Field(
        ["general"], description="Prompt sets to score; when none of their pairs exist, every pair is scored."
    )


def clip_scores(images_emb, texts_emb):  # type: ignore[no-untyped-def]
    """Row-wise CLIPScore ``100 · max(cos(image_i, text_i), 0)`` of L2-normalised embeddings."""
    return 100.0 * (images_emb * texts_emb).sum(-1).clamp(min=0)


class ClipScoreMetric(Metric):
    """Prompt fidelity: CLIPScore (Hessel et al. 2021, scaled ×100 as in torchmetrics) of every image
    with its prompt; the figure is the paired difference adapted − base (negative: prompt-following lost)."""

    name = "clip_score"
    description = "Prompt fidelity: CLIPScore of image and prompt, adapted − base (general prompts)."
    Options = ClipScoreOptions
    options: ClipScoreOptions

    def compute(self, context: EvalContext) -> list[Figure]:
        o = self.options
        sets = o.sets if o.sets is None or any(s in o.sets for s in context.pairs.sets) else None
        pairs = selected_pairs(context, self.name, sets)
        enc = encoder(context, self.name, o.model, o.batch_size)
        texts = enc.encode_texts(pairs.prompts)
        base = clip_scores(enc.encode_images(pairs.base), texts)
        adapted = clip_scores(enc.encode_images(pairs.adapted), texts)
        which = "every prompt" if sets is None else f"the {', '.join(sets)} prompts"
        return [
            paired_figure(
                self.name, "clip_score", base.tolist(), adapted.tolist(), pairs.prompts,
                f"CLIPScore (100·cos) on {which} ({o.model}), adapted − base",
                higher_is_better=True, n_resamples=o.n_resamples, seed=o.seed,
            )
        ]  # fmt: skip


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register ``clip_score``."""
    register(ClipScoreMetric)
