"""The style-gain vs fidelity-loss trade-off of one evaluated model, and the best checkpoint.

The rule: among the candidates whose fidelity loss stays within ``tolerance`` × the base model's
fidelity, the one with the highest style gain; when none stays within, the one that loses least.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adaptkit.evaluation.context import Figure, find_figure

#: Figures to take an axis from, in order of preference: ``(metric, figure name or None for its first)``.
Axes = Sequence[tuple[str, "str | None"]]

#: Where the style axis comes from: the style metric's gain, else the embedded probes' target-style rate.
STYLE_AXES: tuple[tuple[str, str | None], ...] = (("style", None), ("embedded_probes", "target_style"))
#: Where the fidelity (prompt-following) axis comes from: CLIPScore, else the probes' shape-and-colour accuracy.
FIDELITY_AXES: tuple[tuple[str, str | None], ...] = (("clip_score", None), ("embedded_probes", "both"))
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class TradeOff:
    """One model's position: style gain (adapted − base) and fidelity loss (base − adapted), each with
    its 95% interval."""

    label: str
    style_gain: float
    fidelity_loss: float
    base_fidelity: float
    style_figure: str
    fidelity_figure: str
    style_gain_ci: tuple[float, float] = (math.nan, math.nan)
    fidelity_loss_ci: tuple[float, float] = (math.nan, math.nan)

    def within(self, tolerance: float) -> bool:
        """Whether the fidelity loss is at most ``tolerance`` × the base model's fidelity."""
        return self.fidelity_loss <= tolerance * abs(self.base_fidelity)


def _pick(figures: Sequence[Figure], axes: Axes) -> Figure | None:
    """The figure of the first of ``axes`` that ``figures`` has."""
    return next((f for f in (find_figure(figures, *axis) for axis in axes) if f is not None), None)


def _sides(f: Figure) -> tuple[float, float]:
    """``(base, adapted)`` of a figure; a figure without sides is a difference from a zero base."""
    if f.base is not None and f.adapted is not None:
        return f.base, f.adapted
    return 0.0, f.value


def parse_axis(text: str) -> tuple[str, str | None]:
    """``METRIC`` or ``METRIC/FIGURE`` (as given to ``--style-figure`` / ``--fidelity-figure``)."""
    metric, _, name = text.partition("/")
    return metric, name or None


def trade_off(
    label: str, figures: Sequence[Figure], style_axes: Axes = STYLE_AXES, fidelity_axes: Axes = FIDELITY_AXES
) -> TradeOff | None:
    """The trade-off of one evaluated model (``None`` when its figures have no style or fidelity axis)."""
    style, fidelity = _pick(figures, style_axes), _pick(figures, fidelity_axes)
    if style is None or fidelity is None:
        return None
    s_base, s_adapted = _sides(style)
    f_base, f_adapted = _sides(fidelity)
    gain = (s_adapted - s_base) if style.higher_is_better else (s_base - s_adapted)
    loss = (f_base - f_adapted) if fidelity.higher_is_better else (f_adapted - f_base)
    return TradeOff(
        label,
        gain,
        loss,
        f_base,
        f"{style.metric}/{style.name}",
        f"{fidelity.metric}/{fidelity.name}",
        _oriented_ci(style, better=True),
        _oriented_ci(fidelity, better=False),
    )


def _oriented_ci(f: Figure, better: bool) -> tuple[float, float]:
    """The interval of a figure's change (adapted − base), turned into a gain (``better``: up is better)
    or a loss (up is worse)."""
    if f.higher_is_better == better:
        return f.ci_low, f.ci_high
    return -f.ci_high, -f.ci_low


def rule_text(tolerance: float) -> str:
    """The ranking rule, as printed beside the result."""
    return (
        f"best = highest style gain among models whose fidelity loss is at most {tolerance:.0%} of the base "
        "model's fidelity (if none is, the smallest fidelity loss)"
    )


def best(candidates: Sequence[TradeOff], tolerance: float = DEFAULT_TOLERANCE) -> TradeOff | None:
    """The best trade-off by :func:`rule_text`'s rule (``None`` when there are no candidates)."""
    if not candidates:
        return None
    within = [c for c in candidates if c.within(tolerance)]
    if within:
        return max(within, key=lambda c: c.style_gain)
    return min(candidates, key=lambda c: c.fidelity_loss)
