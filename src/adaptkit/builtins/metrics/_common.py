"""What the built-in metrics share: options, pair selection, encoder loading."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.evaluation.bootstrap import BootstrapOptions
from adaptkit.evaluation.context import EvalContext, EvalPairs, MetricUnavailable
from adaptkit.evaluation.encoders import DEFAULT_BATCH_SIZE, DEFAULT_CLIP, EncoderKind, load_encoder

if TYPE_CHECKING:
    from adaptkit.evaluation.encoders import CLIPEncoder, DINOEncoder


class EncoderOptions(BootstrapOptions):
    """Options of a metric that embeds images with CLIP."""

    model: str = Field(DEFAULT_CLIP, description="CLIP model: a Hub id or a local folder.")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, description="Images per encoder batch.")


def selected_pairs(context: EvalContext, metric: str, sets: list[str] | None) -> EvalPairs:
    """The pairs in ``sets`` (all pairs when ``None``); MetricUnavailable when there are none."""
    pairs = context.pairs if sets is None else context.pairs.subset(context.pairs.indices(sets))
    if len(pairs) == 0:
        wanted = "any prompt set" if sets is None else f"prompt sets {', '.join(sets)}"
        raise MetricUnavailable(f"metric {metric}: no generated pairs in {wanted}")
    return pairs


def references(context: EvalContext, metric: str, minimum: int = 1) -> list:
    """The context's reference images; MetricUnavailable when fewer than ``minimum``."""
    if len(context.references) < minimum:
        raise MetricUnavailable(
            f"metric {metric}: needs at least {minimum} held-out reference images of the style, "
            f"got {len(context.references)}; hold some out of training with data.options.eval_fraction (e.g. 0.05)"
        )
    return list(context.references)


def encoder(
    context: EvalContext, metric: str, model: str, batch_size: int, kind: EncoderKind = "clip"
) -> "CLIPEncoder | DINOEncoder":
    """The shared encoder of ``model`` on the context's device."""
    return load_encoder(kind, model, context.device, metric, batch_size)
