"""What a run would do, checked without training: ``adaptkit run --dry-run`` / ``adaptkit validate --deep``.

Resolves the base model (a local folder or file is checked; a Hub id is looked up in the local
Hub cache only, never downloaded) and loads the dataset's rows (decoding is lazy, so this reads
the index, not every image), then counts steps, epochs and what will be cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptkit.resolve import ResolvedRecipe
from adaptkit.run import RunDir
from adaptkit.training import checkpoint as ckpt


@dataclass(frozen=True)
class RunPlan:
    """The figures of one planned run."""

    base: str
    examples: int
    skipped: int
    steps: int
    examples_per_step: int
    epochs: float
    caches: str
    resumable_from: str | None

    def lines(self) -> list[str]:
        """The plan as ``key: value`` lines."""
        steps_per_epoch = self.examples / max(self.examples_per_step, 1)
        return [
            f"base model: {self.base}",
            f"dataset: {self.examples} examples" + (f" ({self.skipped} skipped)" if self.skipped else ""),
            f"steps: {self.steps} × {self.examples_per_step} examples per step "
            f"= {self.epochs:.2f} epochs ({steps_per_epoch:.1f} steps per epoch)",
            f"cached: {self.caches}",
            f"--resume would continue from: {self.resumable_from or 'nothing (no complete checkpoint)'}",
        ]


def describe_base(base: str) -> str:
    """Where the base model comes from, checked offline."""
    from adaptkit.models import resolve_base
    from adaptkit.recipe import ModelSection

    source = resolve_base(ModelSection(base=base))
    if source.kind != "hub":
        return f"{base} ({source.kind}: {source.location})"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(base, "model_index.json")
    where = (
        "in the local Hub cache" if isinstance(cached, str) else "not in the local Hub cache: downloaded on first run"
    )
    return f"{base} (Hub id, {where})"


def plan_run(resolved: ResolvedRecipe) -> RunPlan:
    """Resolve the base and the dataset and count the run (one UserError line for what is missing)."""
    from adaptkit.data.run_examples import load_training_sets
    from adaptkit.training.cache import cache_settings

    recipe, train = resolved.recipe, resolved.recipe.train
    base = describe_base(recipe.model.base)
    from adaptkit.training.priors import pending_prior_sets

    pending = pending_prior_sets(recipe)  # generated when the run starts
    examples = load_training_sets(resolved.dataset, recipe.data, resolved.extra_datasets, pending).examples
    per_step = train.batch_size * train.gradient_accumulation
    settings = cache_settings(recipe.data, resolved.method.trains_text_encoder, resolved.method.name)
    cached = []
    if settings.latents:
        where = f"on disk in {settings.directory}" if settings.directory is not None else "in memory"
        when = "each as a batch first draws it" if settings.first_draw else "before the first step"
        cached.append(f"latents ({where}, encoded {when})")
    if settings.text:
        cached.append("text embeddings (in memory, before the first step)")
    newest = ckpt.newest_complete(RunDir(resolved.run_dir).checkpoints)
    return RunPlan(
        base=base,
        examples=len(examples),
        skipped=getattr(examples, "skipped", 0),
        steps=train.steps,
        examples_per_step=per_step,
        epochs=train.steps * per_step / max(len(examples), 1),
        caches=", ".join(cached) or "nothing",
        resumable_from=str(newest) if newest else None,
    )
