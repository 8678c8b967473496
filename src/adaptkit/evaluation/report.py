"""Self-contained HTML reports: every image and plot embedded as a base64 PNG, no external URL.

:func:`write_run_report` renders one evaluation (grid, loss curve, training time and throughput,
metrics table with confidence intervals); :mod:`adaptkit.evaluation.compare` reuses the pieces.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.evaluation.html_images import img_tag
from adaptkit.evaluation.plots import plot_image, pyplot
from adaptkit.evaluation.scales import SCALES_PNG
from adaptkit.evaluation.sets_report import sets_html
from adaptkit.interop.metadata import read_metrics
from adaptkit.run import RunDir, read_run_recipe

if TYPE_CHECKING:
    from PIL import Image

    from adaptkit.evaluation.context import Figure
    from adaptkit.evaluation.runner import EvalResult

#: Prompts shown as grid columns (the first seed of each).
GRID_COLUMNS = 8

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.grid img { width: 128px; height: 128px; image-rendering: pixelated; display: block; }
table.grid th.prompt { font-weight: normal; font-size: 0.8em; max-width: 128px; }
"""


def grid_columns(prompts: Sequence[str], limit: int = GRID_COLUMNS) -> list[int]:
    """Indices of the first pair of each distinct prompt (at most ``limit``): one column per prompt."""
    seen: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        seen.setdefault(prompt, i)
    return list(seen.values())[:limit]


def grid_html(prompts: Sequence[str], seeds: Sequence[int], rows: Sequence[tuple[str, Sequence[Any]]]) -> str:
    """A table with a column per prompt (same seed in every row) and a labelled row per model."""
    columns = grid_columns(prompts)
    head = "".join(f'<th class="prompt">{html.escape(prompts[i])}<br>seed {seeds[i]}</th>' for i in columns)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{img_tag(images[i], f'{label}: {prompts[i]}')}</td>" for i in columns)
        + "</tr>"
        for label, images in rows
    )
    return f'<table class="grid"><tr><th>model</th>{head}</tr>{body}</table>'


def figures_table_html(rows: Sequence[tuple[str, "Figure"]], unavailable: dict[str, str]) -> str:
    """Metrics with base, adapted and the change with its 95% CI; ``rows`` are ``(model label, figure)``."""
    cells = []
    for label, f in rows:
        better = "higher" if f.higher_is_better else "lower"
        cells.append(
            f"<tr><td>{html.escape(label)}</td><td>{html.escape(f.metric)}</td>"
            f'<td title="{html.escape(f.description)}">{html.escape(f.name)} ({better} is better)</td>'
            f'<td class="num">{_num(f.base)}</td><td class="num">{_num(f.adapted)}</td>'
            f'<td class="num">{f.value:+.4g} [{f.ci_low:+.4g}, {f.ci_high:+.4g}]</td><td class="num">{f.n}</td></tr>'
        )
    for name, reason in unavailable.items():
        cells.append(
            f'<tr><td></td><td>{html.escape(name)}</td><td colspan="5">unavailable: {html.escape(reason)}</td></tr>'
        )
    head = "<tr><th>model</th><th>metric</th><th>figure</th><th>base</th><th>adapted</th>"
    head += "<th>change [95% CI]</th><th>n</th></tr>"
    return f"<table>{head}{''.join(cells)}</table>"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def loss_curve(metrics_jsonl: Path) -> "Image.Image | None":
    """The training loss by step from a run's ``metrics.jsonl``, with the validation loss beside it when
    the run measured one (``None`` when it has no loss rows).

    Rows come from :func:`adaptkit.interop.metadata.read_metrics`, which leaves out a torn last
    line; rows whose step or loss is not a number are left out too.
    """
    rows = read_metrics(metrics_jsonl)
    series = {
        name: [(row["step"], row[key]) for row in rows if _is_number(row.get("step")) and _is_number(row.get(key))]
        for key, name in (("loss", "training loss"), ("val_loss", "validation loss"))
    }
    if not series["training loss"]:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for name, points in series.items():
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if series["validation loss"]:
        ax.legend()
    ax.grid(alpha=0.3)
    return plot_image(fig)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def training_html(run_dir: Path) -> str:
    """Training time and throughput from the run's ``result.json``."""
    path = RunDir(run_dir).result
    if not path.is_file():
        return "<p>No result.json: training time unknown.</p>"
    result = json.loads(path.read_text(encoding="utf-8"))
    return (
        f"<table><tr><th>steps</th><td class=num>{result.get('steps')}</td></tr>"
        f"<tr><th>training time</th><td class=num>{result.get('wall_time_s', 0):.1f} s</td></tr>"
        f"<tr><th>throughput</th><td class=num>{result.get('images_per_s', 0):.2f} images/s</td></tr>"
        f"<tr><th>final loss</th><td class=num>{_num(result.get('final_loss'))}</td></tr></table>"
    )


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A whole HTML document with ``sections`` as ``(heading, body html)``."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def write_run_report(result: "EvalResult", path: Path) -> Path:
    """One run's ``report.html``: grid (base row, adapted row), loss curve, training figures, metrics."""
    pairs, s = result.pairs, result.settings
    label = f"adapted ({s.get('method')}, {result.checkpoint})"
    curve = loss_curve(RunDir(result.run_dir).metrics)
    sections = [
        (
            f"Base vs adapted: {s.get('sampler')}, {s.get('steps')} steps, guidance {s.get('guidance')}",
            grid_html(
                pairs.prompts, pairs.seeds, [(f"base ({s.get('base_model')})", pairs.base), (label, pairs.adapted)]
            ),
        ),
        (
            "Metrics (paired bootstrap 95% CI over prompts)",
            figures_table_html([(label, f) for f in result.figures], result.unavailable),
        ),
        (
            "Training",
            training_html(result.run_dir) + (img_tag(curve, "loss curve") if curve else "<p>No loss logged.</p>"),
        ),
    ]
    sets = sets_html(read_run_recipe(result.run_dir)) if RunDir(result.run_dir).recipe.is_file() else None
    if sets is not None:
        sections.append(("Training sets", sets))
    strengths = path.parent / SCALES_PNG
    if strengths.is_file():
        from PIL import Image

        with Image.open(strengths) as plot:
            sections.append(
                ("Adapter strength (the same base images)", img_tag(plot.convert("RGB"), "adapter strength"))
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(f"adaptkit evaluation: {result.run_dir.name}", sections), encoding="utf-8")
    return path
