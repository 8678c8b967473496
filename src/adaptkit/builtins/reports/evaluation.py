"""After training: ``result.json`` (training time and throughput) and, when the recipe's ``[eval]``
lists metrics (or ``embedded_probes = true``), the before/after evaluation of
:func:`adaptkit.evaluation.runner.evaluate_run` (``eval/metrics.json``, ``eval/report.html`` and
the summary table)."""

from __future__ import annotations

import json
from typing import Any

from adaptkit.hookspecs import hookimpl


@hookimpl
def check_recipe(recipe: Any) -> list[str] | None:
    """The embedded probes judge the embedded styles only."""
    if "embedded_probes" in recipe.eval.metric_names and recipe.data.adapter != "embedded-styles":
        key = "eval.embedded_probes" if recipe.eval.embedded_probes else "eval.metrics"
        return [f"{key}: needs data.adapter = 'embedded-styles' (got {recipe.data.adapter!r})"]
    return None


@hookimpl(tryfirst=True)
def on_train_end(run: Any, result: dict[str, Any]) -> None:
    """Write ``result.json``, then evaluate when the recipe asks for it (before the model card is written)."""
    from adaptkit.evaluation.runner import RESULT_JSON, evaluate_run

    (run.run_dir / RESULT_JSON).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    if run.recipe.eval.metric_names:
        result["evaluation"] = evaluate_run(run.run_dir).to_dict()
