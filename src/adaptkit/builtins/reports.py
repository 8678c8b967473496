"""After training, in this order: the before/after evaluation (when the recipe's ``[eval]`` lists
metrics), then the Hugging Face model card in ``adapter/README.md`` with the figures it wrote.

One ``on_train_end`` hook does both, so the card never depends on the order pluggy calls hooks in.
``result.json`` is already written by the trainer. See :func:`adaptkit.evaluation.runner.evaluate_run`
and :mod:`adaptkit.interop.model_card`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from adaptkit.run import Run, TrainingResult


@hookimpl
def on_train_end(run: "Run", result: "TrainingResult") -> None:
    """Evaluate when the recipe asks for it, then write the model card (when the method saved into ``adapter/``)."""
    from adaptkit.evaluation.runner import evaluate_run
    from adaptkit.interop.metadata import read_run
    from adaptkit.interop.model_card import write_card

    if run.recipe.eval.metric_names:
        evaluate_run(run.run_dir)  # writes eval/, which the card reads
    if run.dir.adapter.is_dir():  # a plugin method may save nothing there
        write_card(read_run(run.run_dir), run.dir.model_card, result.to_dict())
