"""``embedded_probes``: the embedded world's probes judge style, shape and colour, base vs adapted.

Only for runs on the embedded styles (the context's ``style`` is set). Each pair's prompt is
matched to its ground truth (shape, colour, background, size) and both images are scored with
:func:`adaptkit.embedded.evaluate.score`; figures are adapted − base with CIs over prompts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field

from adaptkit.component import Metric
from adaptkit.evaluation.bootstrap import BootstrapOptions, paired_figure
from adaptkit.evaluation.context import EvalContext, Figure, MetricUnavailable

#: The probes shipped beside the embedded model.
PROBES_DIR = Path(__file__).resolve().parent / "probes"


class ProbeOptions(BootstrapOptions):
    """Options of ``embedded_probes``."""

    probes: str = Field(
        "",
        description="Folder of the probes (probes.safetensors, config.json); empty: the probes shipped with adaptkit.",
    )


@cache
def _specs_by_prompt() -> dict:
    from adaptkit.embedded.evaluate import PromptSpec
    from adaptkit.embedded.world import SIZES, caption_for, combos

    return {
        caption_for(s, c, b, sz): PromptSpec(caption_for(s, c, b, sz), s, c, b, sz, 0)
        for s, c, b in combos("any")
        for sz in SIZES
    }


class EmbeddedProbesMetric(Metric):
    """Target-style rate, shape, colour and shape-and-colour accuracy of the embedded probes on
    every pair whose prompt is an embedded-world caption, as adapted − base."""

    name = "embedded_probes"
    description = "Embedded world: probe-judged target style, shape and colour accuracy, adapted − base."
    Options = ProbeOptions
    options: ProbeOptions

    #: figure name -> (score key, what it measures)
    FIGURES = {
        "target_style": ("style_{style}", "fraction of images the style probe puts in style {style}"),
        "shape": ("shape", "fraction of images whose probed shape matches the prompt"),
        "colour": ("colour", "fraction of images whose probed colour matches the prompt"),
        "both": ("both", "fraction of images whose probed shape and colour both match the prompt"),
    }

    @classmethod
    def applies_to(cls, dataset_adapter: str) -> bool:
        """Only runs on the embedded styles (the probes know no other images)."""
        from adaptkit.embedded.dataset import EmbeddedStylesAdapter

        return dataset_adapter == EmbeddedStylesAdapter.name

    def compute(self, context: EvalContext) -> list[Figure]:
        from adaptkit.embedded.evaluate import score
        from adaptkit.embedded.probes import Probes

        o = self.options
        if context.style is None:
            raise MetricUnavailable(f"metric {self.name}: only for runs on the embedded styles (no style set)")
        lookup = _specs_by_prompt()
        keep = [i for i in context.pairs.indices(o.sets) if context.pairs.prompts[i] in lookup]
        if not keep:
            raise MetricUnavailable(f"metric {self.name}: no pair has an embedded-world caption as its prompt")
        folder = Path(o.probes) if o.probes else PROBES_DIR
        if not (folder / "probes.safetensors").is_file():
            raise MetricUnavailable(f"metric {self.name}: no probes in {folder} (probes.safetensors)")
        probes = Probes.load(folder)
        if context.style not in probes.labels["style"]:
            raise MetricUnavailable(
                f"metric {self.name}: the probes know styles {', '.join(probes.labels['style'])}, not {context.style!r}"
            )
        pairs = context.pairs.subset(keep)
        specs = [lookup[p] for p in pairs.prompts]
        per_pair = {
            side: [score(probes, [image], [spec]) for image, spec in zip(images, specs)]
            for side, images in (("base", pairs.base), ("adapted", pairs.adapted))
        }
        figures = []
        for name, (key, what) in self.FIGURES.items():
            key = key.format(style=context.style)
            figures.append(
                paired_figure(
                    self.name, name, [s[key] for s in per_pair["base"]], [s[key] for s in per_pair["adapted"]],
                    pairs.prompts, what.format(style=context.style) + ", adapted − base",
                    higher_is_better=True, n_resamples=o.n_resamples, seed=o.seed,
                )
            )  # fmt: skip
        return figures
