"""``evaluate_run``: base vs adapted images of a finished run, scored by the recipe's ``[eval]`` metrics.

A run (or one of its checkpoints) is evaluated on the prompts × seeds of its evaluation prompt set:
the base and the adapted pipeline generate the same pairs with the same sampler, every metric
listed in ``[eval]`` scores them, a metric that cannot run here (:class:`MetricUnavailable`)
becomes one line, and ``eval/metrics.json``, ``eval/images/`` and ``eval/report.html`` are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.evaluation.context import EvalContext, EvalPairs, Figure, MetricUnavailable, find_figure
from adaptkit.run import BEFORE_AFTER_PNG, RunDir, to_json
from adaptkit.sampling.generate import GenerationSettings, generate_images

#: Files of one evaluation folder (the run's ``eval/`` or ``eval/checkpoints/step-NNNNNN/``).
METRICS_JSON = "metrics.json"
REPORT_HTML = "report.html"
IMAGES_DIR = "images"
RANKING_JSON = "ranking.json"
#: The adapted model in ``adapter/`` (as opposed to a checkpoint folder name).
FINAL = "final"


@dataclass
class EvalResult:
    """Figures of one adapted model (the run's result or one checkpoint) against the base model."""

    run_dir: Path
    checkpoint: str
    figures: list[Figure]
    unavailable: dict[str, str]
    pairs: EvalPairs
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return {
            "run": str(self.run_dir),
            "checkpoint": self.checkpoint,
            "settings": self.settings,
            "figures": [f.to_dict() for f in self.figures],
            "unavailable": self.unavailable,
            "pairs": [
                {"prompt": p, "set": s, "seed": seed}
                for p, s, seed in zip(self.pairs.prompts, self.pairs.sets, self.pairs.seeds)
            ],
        }

    def figure(self, metric: str, name: str | None = None) -> Figure | None:
        """The first figure of ``metric`` (named ``name`` when given)."""
        return find_figure(self.figures, metric, name)


def evaluation_prompts(recipe: Any, dataset: Any = None) -> tuple[list[str], list[int], list[str]]:
    """Parallel ``(prompts, seeds, sets)`` of the run's evaluation, set by set (``[eval] prompt_sets``,
    else the dataset's ``default_prompt_sets``): a set the dataset defines itself gives its own pairs
    (:meth:`~adaptkit.DatasetAdapter.evaluation_pairs`); the shared ones (see
    :mod:`adaptkit.evaluation.prompts`) take seeds ``0 .. seeds_per_prompt - 1``. An in-style set the
    dataset cannot give (no held-out split) is skipped with one printed line."""
    from adaptkit.component import DatasetAdapter
    from adaptkit.evaluation.prompts import prompt_set

    evaluation = recipe.eval
    names = evaluation.prompt_sets or (dataset or DatasetAdapter).default_prompt_sets
    prompts: list[str] = []
    seeds: list[int] = []
    sets: list[str] = []
    for name in names:
        own = dataset.evaluation_pairs(name, evaluation.prompts, evaluation.seeds_per_prompt) if dataset else None
        if own is not None:
            pairs = own
        else:
            try:
                chosen = prompt_set(name, dataset, evaluation.prompts).prompts
            except UserError as exc:
                if name != "in-style" or evaluation.prompt_sets:
                    raise
                print(f"eval: no in-style prompts ({exc.lines[0]}); using the other sets")
                continue
            pairs = [(p, seed) for p in chosen for seed in range(evaluation.seeds_per_prompt)]
        prompts += [p for p, _ in pairs]
        seeds += [seed for _, seed in pairs]
        sets += [name] * len(pairs)
    return prompts, seeds, sets


def default_metrics(recipe: Any, registry: Any) -> list[str]:
    """The recipe's ``[eval]`` metrics; when it lists none, every registered metric that applies to
    the run's dataset (:meth:`~adaptkit.Metric.applies_to`)."""
    if recipe.eval.metric_names:
        return recipe.eval.metric_names
    return [name for name, entry in registry if entry.cls.applies_to(recipe.data.adapter)]


class Evaluation:
    """One run's evaluation set-up, shared by every checkpoint scored (the base images are made once)."""

    def __init__(self, run_dir: Path, metrics: Sequence[str] | None = None, overrides: Sequence[str] = ()) -> None:
        from adaptkit.plugins import get_plugin_manager
        from adaptkit.recipe.overrides import RecipeSource
        from adaptkit.resolve import build_component
        from adaptkit.run import read_run_recipe

        self.run_dir = Path(run_dir)
        self.recipe = read_run_recipe(self.run_dir, overrides)
        self.overrides = list(overrides)
        self.registries = get_plugin_manager(self.recipe.plugins.modules).collect()
        source, errors = RecipeSource(RunDir(self.run_dir).recipe, overrides), []
        sample = self.recipe.sample
        self.sampler = build_component(
            self.registries.samplers, sample.sampler, sample.options, source, "sample.sampler", errors
        )
        self.metrics = {
            name: build_component(
                self.registries.metrics,
                name,
                self.recipe.eval.metric_options(name),
                source,
                "eval.metrics",
                errors,
                f"eval.{name}",
            )
            for name in metrics or default_metrics(self.recipe, self.registries.metrics)
        }
        if errors:
            raise UserError.collect(errors)
        self.prompts, self.seeds, self.sets = evaluation_prompts(self.recipe, self.dataset)
        self.settings = GenerationSettings.from_recipe(self.recipe, batch_size=self.recipe.eval.batch_size)

    @cached_property
    def device(self) -> Any:
        import torch

        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _generate(self, pipeline: Any) -> list[Any]:
        return generate_images(pipeline.to(self.device), self.prompts, self.seeds, self.settings)

    @cached_property
    def base_images(self) -> list[Any]:
        from adaptkit.sampling.pipeline import load_pipeline

        return self._generate(load_pipeline(self.recipe.model, self.sampler, self.registries))

    @cached_property
    def dataset(self) -> Any:
        """The run's dataset adapter (``None`` when its plugin is not installed here)."""
        from adaptkit.resolve import build_component

        data = self.recipe.data
        return build_component(self.registries.datasets, data.adapter, data.options, "recipe", "data.adapter", [])

    @cached_property
    def references(self) -> list[Any]:
        """Held-out real images of the style (the dataset's ``eval`` split), as many as there are pairs."""
        try:
            held_out = self.dataset.load(split="eval") if self.dataset is not None else []
            return [held_out[i].image.convert("RGB") for i in range(min(len(held_out), len(self.prompts)))]
        except (UserError, ValueError, KeyError, OSError):
            return []  # metrics that need references report themselves unavailable

    @property
    def style(self) -> str | None:
        """The dataset's target style, for metrics that judge a named style (None when it names none)."""
        return self.dataset.target_style() if self.dataset is not None else None

    def adapted_pipeline(self, checkpoint: Path | None) -> Any:
        """The run's result (``checkpoint=None``) or the weights of one checkpoint folder."""
        from adaptkit.sampling.pipeline import load_pipeline

        if checkpoint is None:
            return load_pipeline(self.recipe.model, self.sampler, self.registries, self.run_dir)
        return checkpoint_pipeline(self, checkpoint)

    def evaluate(self, checkpoint: Path | None = None) -> EvalResult:
        """Generate the adapted images (at ``eval.adapter_scale``) and run every metric on the pairs."""
        return self.score(self.adapted_pipeline(checkpoint), checkpoint, self.recipe.eval.adapter_scale)

    def score(self, adapted: Any, checkpoint: Path | None, scale: float) -> EvalResult:
        """The figures of ``adapted`` (built by :meth:`adapted_pipeline` from ``checkpoint``) with its
        adapter at strength ``scale``."""
        from adaptkit.sampling.adapter_scale import set_adapter_scale

        set_adapter_scale(adapted, scale)
        pairs = EvalPairs(self.prompts, self.sets, self.seeds, self.base_images, self._generate(adapted))
        figures: list[Figure] = []
        unavailable: dict[str, str] = {}
        for name, metric in self.metrics.items():
            context = EvalContext(
                pairs, self.references, self.style, self.device, self.recipe.eval.metric_options(name)
            )
            try:
                figures.extend(metric.compute(context))
            except MetricUnavailable as exc:
                unavailable[name] = str(exc).splitlines()[0] if str(exc) else "unavailable"
        sample = self.recipe.sample
        settings = {
            "base_model": self.recipe.model.base,
            "method": self.recipe.method.name,
            **comparable_settings(sample.sampler, sample.options, self.settings),
            "images": len(pairs),
            "weights": "ema" if self.recipe.ema.enabled else "trained",
            "adapter_scale": scale,
            "overrides": self.overrides,
        }
        return EvalResult(self.run_dir, checkpoint.name if checkpoint else FINAL, figures, unavailable, pairs, settings)


def comparable_settings(sampler: str, options: dict[str, Any], generation: GenerationSettings) -> dict[str, Any]:
    """The sampler settings two evaluations must share for their figures to be compared."""
    return {
        "sampler": sampler,
        "sampler_options": dict(options),
        "steps": generation.steps,
        "guidance": generation.guidance,
        "resolution": generation.resolution,
        "negative_prompt": generation.negative_prompt,
    }


def checkpoint_pipeline(evaluation: Evaluation, checkpoint: Path) -> Any:
    """A pipeline with the weights saved in ``checkpoint`` (its EMA weights when the run kept an EMA)."""
    from adaptkit.training.checkpoint_use import checkpoint_model

    components = checkpoint_model(
        checkpoint, evaluation.recipe, evaluation.registries, option="--checkpoints"
    ).components
    return components.pipeline(evaluation.sampler.build(dict(components.scheduler_config)))


def pair_image(folder: Path, side: str, index: int) -> Path:
    """Where pair ``index``'s ``side`` (``base`` or ``adapted``) image is saved: ``folder/<side>-NNN.png``."""
    return folder / f"{side}-{index:03d}.png"


def write_result(result: EvalResult, out_dir: Path) -> Path:
    """``metrics.json``, the paired images (``images/base-NNN.png``, ``images/adapted-NNN.png``), a
    ``before-after.png`` grid of the first pairs and ``report.html`` into ``out_dir``; returns the report's path."""
    from adaptkit.evaluation.report import GRID_COLUMNS, write_run_report
    from adaptkit.sampling.grids import make_grid

    images = out_dir / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    for i, (base, adapted) in enumerate(zip(result.pairs.base, result.pairs.adapted)):
        base.save(pair_image(images, "base", i))
        adapted.save(pair_image(images, "adapted", i))
    shown = min(GRID_COLUMNS, len(result.pairs))
    grid = make_grid(
        [result.pairs.base[:shown], result.pairs.adapted[:shown]], ["base", f"adapted ({result.checkpoint})"]
    )
    grid.save(out_dir / BEFORE_AFTER_PNG)
    (out_dir / METRICS_JSON).write_text(to_json(result.to_dict(), indent=2), encoding="utf-8")
    return write_run_report(result, out_dir / REPORT_HTML)


def evaluate_run(run_dir: Path, checkpoint: Path | None = None, metrics: Sequence[str] | None = None) -> EvalResult:
    """Evaluate a run's result (or ``checkpoint``), write ``eval/`` and print the summary table."""
    return evaluate_checkpoints(run_dir, [checkpoint], metrics)[0]


def evaluate_checkpoints(
    run_dir: Path,
    checkpoints: Sequence[Path | None],
    metrics: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> list[EvalResult]:
    """Evaluate several adapted models of one run against one set of base images: ``None`` is the
    run's result (written to ``eval/``), a path a checkpoint (``eval/checkpoints/step-NNNNNN/``).
    ``overrides`` (``eval.*`` / ``sample.*`` keys) change how the run is evaluated, not what it trained."""
    from adaptkit.evaluation.scales import evaluate_scales

    evaluation = Evaluation(Path(run_dir), metrics, overrides)
    files = RunDir(Path(run_dir))
    results = []
    for checkpoint in checkpoints:
        adapted = evaluation.adapted_pipeline(checkpoint)
        out_dir = files.eval if checkpoint is None else files.checkpoint_eval(checkpoint.name)
        evaluate_scales(evaluation, adapted, checkpoint, out_dir)  # before the headline, whose report plots them
        result = evaluation.score(adapted, checkpoint, evaluation.recipe.eval.adapter_scale)
        write_result(result, out_dir)
        print_summary(result)
        results.append(result)
    return results


def format_value(value: float | None) -> str:
    """A figure for the terminal table, to 3 significant digits."""
    return "—" if value is None else f"{value:.3g}"


def print_summary(result: EvalResult) -> None:
    """The short terminal table: one row per figure (base, adapted, change with its 95% CI)."""
    from rich.console import Console
    from rich.table import Table

    s = result.settings
    table = Table(
        title=f"{result.run_dir.name} ({result.checkpoint}): {s.get('images')} image pairs, "
        f"{s.get('sampler')} {s.get('steps')} steps, guidance {s.get('guidance')}"
    )
    for column, justify in (("metric", "left"), ("figure", "left"), ("base", "right"), ("adapted", "right")):
        table.add_column(column, justify=justify)
    table.add_column("change [95% CI]", justify="right")
    for f in result.figures:
        change = f"{f.value:+.3g} [{f.ci_low:+.3g}, {f.ci_high:+.3g}]"
        table.add_row(f.metric, f.name, format_value(f.base), format_value(f.adapted), change)
    for name, reason in result.unavailable.items():
        table.add_row(name, "unavailable", "", "", reason)
    Console(highlight=False).print(table)
