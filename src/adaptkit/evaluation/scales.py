"""One adapter scored at several strengths (``[eval] adapter_scales``) without retraining: the same
base images, the adapted pipeline rescaled for each strength (:mod:`adaptkit.sampling.adapter_scale`).

Written beside the headline evaluation: ``scales.json`` (every strength's figures) and ``scales.png``
(every figure's change from the base against strength, with its 95% interval: the style gain and the
fidelity change among them), which the report shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adaptkit.evaluation.context import Figure
from adaptkit.evaluation.ranking import FIDELITY_AXES, STYLE_AXES, Axes, TradeOff, trade_off
from adaptkit.run import to_json

SCALES_JSON = "scales.json"
SCALES_PNG = "scales.png"


class Scorer(Protocol):
    """What scores an adapted pipeline at one strength (:class:`adaptkit.evaluation.runner.Evaluation`)."""

    recipe: Any

    def score(self, adapted: Any, checkpoint: Path | None, scale: float) -> Any: ...


@dataclass(frozen=True)
class ScaledFigures:
    """The figures of the adapter at one strength."""

    scale: float
    figures: list[Figure]

    def trade_off(self, style_axes: Axes = STYLE_AXES, fidelity_axes: Axes = FIDELITY_AXES) -> TradeOff | None:
        """Its style gain and fidelity loss, labelled ``scale 0.75``."""
        return trade_off(f"scale {self.scale:g}", self.figures, style_axes, fidelity_axes)


def evaluate_scales(evaluation: Scorer, adapted: Any, checkpoint: Path | None, out_dir: Path) -> list[ScaledFigures]:
    """Score ``adapted`` at every ``eval.adapter_scales`` strength; write ``scales.json`` and
    ``scales.png`` into ``out_dir`` and print one line per strength. With no strengths listed, an
    earlier evaluation's files are removed (so the report never shows stale ones)."""
    if not evaluation.recipe.eval.adapter_scales:
        for name in (SCALES_JSON, SCALES_PNG):
            (out_dir / name).unlink(missing_ok=True)
        return []
    scored = [
        ScaledFigures(scale, evaluation.score(adapted, checkpoint, scale).figures)
        for scale in evaluation.recipe.eval.adapter_scales
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"scales": [{"scale": s.scale, "figures": [f.to_dict() for f in s.figures]} for s in scored]}
    (out_dir / SCALES_JSON).write_text(to_json(payload, indent=2), encoding="utf-8")
    for scaled in scored:
        t = scaled.trade_off()
        if t is not None:
            print(
                f"eval: adapter strength {scaled.scale:g}: style gain {t.style_gain:+.3g}, "
                f"fidelity loss {t.fidelity_loss:+.3g}"
            )
    if any(s.figures for s in scored):
        plot_scales(scored).save(out_dir / SCALES_PNG)
    return scored


def read_scales(eval_dir: Path) -> list[ScaledFigures]:
    """The strengths scored in ``eval_dir/scales.json`` (none when it is missing)."""
    path = Path(eval_dir) / SCALES_JSON
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [ScaledFigures(float(s["scale"]), [Figure(**f) for f in s["figures"]]) for s in data["scales"]]


def plot_scales(scored: list[ScaledFigures]) -> Any:
    """Every figure's change (adapted − base, with its 95% interval) against strength, as a PIL image."""
    from adaptkit.evaluation.plots import plot_image, pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    names = list(dict.fromkeys((f.metric, f.name) for s in scored for f in s.figures))
    for metric, name in names:
        points = [(s.scale, f) for s in scored for f in s.figures if (f.metric, f.name) == (metric, name)]
        scales = [scale for scale, _ in points]
        better = "↑" if points[0][1].higher_is_better else "↓"
        line = axis.plot(scales, [f.value for _, f in points], marker="o", label=f"{metric}/{name} {better}")[0]
        axis.fill_between(
            scales, [f.ci_low for _, f in points], [f.ci_high for _, f in points], alpha=0.15, color=line.get_color()
        )
    axis.axhline(0.0, color="gray", linewidth=0.8)
    axis.set_xlabel("adapter strength (1 = as trained)")
    axis.set_ylabel("change from the base model")
    axis.legend(fontsize=7)
    return plot_image(figure)
