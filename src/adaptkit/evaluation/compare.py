"""One report across runs on the same base model and prompts: grid, metrics, trade-off table and plot."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.evaluation.context import Figure
from adaptkit.evaluation.ranking import (
    DEFAULT_TOLERANCE,
    FIDELITY_AXES,
    STYLE_AXES,
    Axes,
    TradeOff,
    best,
    rule_text,
    trade_off,
)
from adaptkit.evaluation.runner import IMAGES_DIR, METRICS_JSON, pair_image
from adaptkit.run import RunDir


@dataclass
class EvaluatedRun:
    """A run's saved evaluation (``eval/metrics.json`` and its images)."""

    run_dir: Path
    label: str
    base_model: str
    metrics: dict[str, Any]

    @property
    def figures(self) -> list[Figure]:
        return [Figure(**f) for f in self.metrics["figures"]]

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(p["prompt"], p["seed"]) for p in self.metrics["pairs"]]

    def images(self, side: str) -> list[Any]:
        from PIL import Image

        folder = RunDir(self.run_dir).eval / IMAGES_DIR
        return [Image.open(pair_image(folder, side, i)).convert("RGB") for i in range(len(self.pairs))]


def load_evaluated(run_dir: Path) -> EvaluatedRun:
    """A run's evaluation, made first (``adaptkit eval``) when the run has none."""
    from adaptkit.evaluation.runner import evaluate_run
    from adaptkit.run import read_run_recipe

    recipe = read_run_recipe(run_dir)
    path = RunDir(run_dir).eval / METRICS_JSON
    if not path.is_file():
        evaluate_run(run_dir)
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return EvaluatedRun(run_dir, f"{run_dir.name} ({recipe.method.name})", recipe.model.base, metrics)


#: Sampler settings that must match for figures to be compared: their name in ``metrics.json``
#: (written by :func:`adaptkit.evaluation.runner.comparable_settings`) and their recipe key.
COMPARED_SETTINGS = {
    "sampler": "sample.sampler",
    "sampler_options": "sample.options",
    "steps": "sample.steps",
    "guidance": "sample.guidance",
    "resolution": "sample.resolution",
    "negative_prompt": "sample.negative_prompt",
}


def check_comparable(runs: Sequence[EvaluatedRun]) -> None:
    """Refuse runs on different base models, evaluated on different prompts × seeds or with
    different sampler settings (one line)."""
    first = runs[0]
    for run in runs[1:]:
        if run.base_model != first.base_model:
            raise UserError(
                f"compare: {run.run_dir} uses base model {run.base_model!r}, {first.run_dir} uses "
                f"{first.base_model!r}; compare runs of one base model"
            )
        if run.pairs != first.pairs:
            raise UserError(
                f"compare: {run.run_dir} was evaluated on other prompts or seeds than {first.run_dir}; "
                "give both the same [eval] and [sample] settings and run adaptkit eval again"
            )
        ours, theirs = first.metrics.get("settings", {}), run.metrics.get("settings", {})
        for key, recipe_key in COMPARED_SETTINGS.items():
            if key in ours and key in theirs and ours[key] != theirs[key]:
                raise UserError(
                    f"compare: {run.run_dir} was evaluated with {recipe_key} = {theirs[key]!r}, {first.run_dir} "
                    f"with {ours[key]!r}; evaluate both alike (adaptkit eval RUN_DIR --set {recipe_key}=VALUE)"
                )


def scatter(offs: Sequence[TradeOff], chosen: TradeOff | None) -> Any:
    """Style gain (y) against fidelity loss (x), one labelled point per run."""
    from adaptkit.evaluation.plots import plot_image, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for t in offs:
        ax.scatter([t.fidelity_loss], [t.style_gain], s=60, marker="*" if t is chosen else "o")
        ax.annotate(t.label, (t.fidelity_loss, t.style_gain), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.axvline(0, color="gray", lw=0.5)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel(f"fidelity loss ({offs[0].fidelity_figure}, base − adapted)")
    ax.set_ylabel(f"style gain ({offs[0].style_figure}, adapted − base)")
    ax.grid(alpha=0.3)
    return plot_image(fig)


def trade_off_html(offs: Sequence[TradeOff], chosen: TradeOff | None, tolerance: float) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(t.label)}</td><td class=num>{t.style_gain:+.4g}</td>"
        f"<td class=num>{t.fidelity_loss:+.4g}</td><td>{'yes' if t.within(tolerance) else 'no'}</td>"
        f"<td>{'best' if t is chosen else ''}</td></tr>"
        for t in offs
    )
    head = "<tr><th>run</th><th>style gain</th><th>fidelity loss</th><th>within tolerance</th><th></th></tr>"
    return f"<table>{head}{rows}</table><p>Rule: {html.escape(rule_text(tolerance))}.</p>"


def compare_runs(
    run_dirs: Sequence[Path],
    out: Path,
    tolerance: float = DEFAULT_TOLERANCE,
    style_axes: Axes = STYLE_AXES,
    fidelity_axes: Axes = FIDELITY_AXES,
) -> tuple[Path, list[TradeOff]]:
    """Write the comparison report to ``out``; returns it with the runs' trade-offs."""
    from adaptkit.evaluation.html_images import img_tag
    from adaptkit.evaluation.report import figures_table_html, grid_html, page

    if len(run_dirs) < 2:
        raise UserError("compare: give at least two run directories")
    runs = [load_evaluated(Path(d)) for d in run_dirs]
    check_comparable(runs)
    prompts, seeds = [p for p, _ in runs[0].pairs], [s for _, s in runs[0].pairs]
    rows = [(f"base ({runs[0].base_model})", runs[0].images("base"))]
    rows += [(run.label, run.images("adapted")) for run in runs]
    offs = [t for t in (trade_off(run.label, run.figures, style_axes, fidelity_axes) for run in runs) if t is not None]
    chosen = best(offs, tolerance)
    table = figures_table_html(
        [(run.label, f) for run in runs for f in run.figures],
        {f"{run.label}: {name}": reason for run in runs for name, reason in run.metrics["unavailable"].items()},
    )
    if offs:
        trade = trade_off_html(offs, chosen, tolerance) + img_tag(scatter(offs, chosen), "style gain vs fidelity loss")
    else:
        trade = "<p>No style and fidelity figures (metrics style and clip_score, or embedded_probes).</p>"
    s = runs[0].metrics["settings"]
    sections = [
        (
            f"Base vs each run: {s.get('sampler')}, {s.get('steps')} steps, guidance {s.get('guidance')}",
            grid_html(prompts, seeds, rows),
        ),
        ("Style gain vs fidelity loss", trade),
        ("Metrics (paired bootstrap 95% CI over prompts)", table),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(f"adaptkit comparison: {', '.join(r.run_dir.name for r in runs)}", sections), encoding="utf-8")
    return out, offs
