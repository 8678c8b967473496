"""After training, a Hugging Face model card in the run's ``adapter/README.md``.

Runs last among the ``on_train_end`` hooks, so evaluation figures other reports write into
``eval/`` (such as ``eval/embedded_probes.json``) are in the card. See :mod:`adaptkit.interop.model_card`.
"""

from __future__ import annotations

from typing import Any

from adaptkit.hookspecs import hookimpl


@hookimpl(trylast=True)
def on_train_end(run: Any, result: dict[str, Any]) -> None:
    """Write ``adapter/README.md`` (YAML metadata, samples, training and evaluation figures, recipe)."""
    from adaptkit.interop.metadata import read_run
    from adaptkit.interop.model_card import CARD_NAME, write_card

    if run.adapter_dir.is_dir():  # a plugin method may save nothing there
        write_card(read_run(run.run_dir), run.adapter_dir / CARD_NAME, result)
