"""``style``: CLIP image-embedding similarity to the style references' centroid, adapted − base."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.component import Metric
from adaptkit.evaluation.bootstrap import paired_figure
from adaptkit.evaluation.context import EvalContext, Figure
from adaptkit.hookspecs import hookimpl

from ._common import EncoderOptions, encoder, references, selected_pairs


class StyleMetric(Metric):
    """Cosine similarity of each generated image to the (normalised) mean CLIP embedding of the
    held-out style images; the figure is the paired gain adapted − base over the same prompts and seeds."""

    name = "style"
    description = "Style gain: CLIP similarity to the style references' centroid, adapted − base."
    Options = EncoderOptions
    options: EncoderOptions

    def compute(self, context: EvalContext) -> list[Figure]:
        import torch

        o = self.options
        refs = references(context, self.name)
        pairs = selected_pairs(context, self.name, o.sets)
        enc = encoder(context, self.name, o.model, o.batch_size)
        centroid = torch.nn.functional.normalize(enc.encode_images(refs).mean(0), dim=0)
        base = enc.encode_images(pairs.base) @ centroid
        adapted = enc.encode_images(pairs.adapted) @ centroid
        return [
            paired_figure(
                self.name, "style_gain", base.tolist(), adapted.tolist(), pairs.prompts,
                f"cosine similarity to the centroid of {len(refs)} style references ({o.model}), adapted − base",
                higher_is_better=True, n_resamples=o.n_resamples, seed=o.seed,
            )
        ]  # fmt: skip


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register ``style``."""
    register(StyleMetric)
