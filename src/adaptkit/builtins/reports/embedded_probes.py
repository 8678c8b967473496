"""``[eval] embedded_probes = true``: before/after figures for runs on the embedded world.

After training, generates held-out prompts × seeds with the base model and with the adapted
model (same sampler, same seeds), classifies every image with the embedded probes, prints a
table (target-style rate, shape, colour and both accuracies, base vs adapted), and writes
``eval/embedded_probes.json`` and ``eval/before-after.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptkit.hookspecs import hookimpl

#: The probes shipped beside the embedded model.
PROBES_DIR = Path(__file__).resolve().parents[2] / "embedded" / "probes"


@hookimpl
def check_recipe(recipe: Any) -> list[str] | None:
    """``eval.embedded_probes`` needs the embedded style sets (the probes judge their styles)."""
    if not recipe.eval.embedded_probes:
        return None
    if recipe.data.adapter != "embedded-styles":
        return [f"eval.embedded_probes: needs data.adapter = 'embedded-styles' (got {recipe.data.adapter!r})"]
    return None


@hookimpl
def on_train_end(run: Any, result: dict[str, Any]) -> None:
    """Run the probe evaluation when the recipe asks for it."""
    if not run.recipe.eval.embedded_probes:
        return
    figures = evaluate_run(run)
    result["embedded_probes"] = figures
    print_table(figures)


def evaluate_run(run: Any) -> dict[str, Any]:
    """Base and adapted figures for the run's target style (see the module docstring)."""
    from adaptkit.builtins.datasets.embedded_styles import EmbeddedStylesOptions
    from adaptkit.embedded.evaluate import eval_prompts, generate, score
    from adaptkit.embedded.probes import Probes
    from adaptkit.errors import UserError
    from adaptkit.inference import load_pipeline
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.resolve import build_component
    from adaptkit.sampling import make_grid

    recipe = run.recipe
    style = EmbeddedStylesOptions.model_validate(recipe.data.options).style
    registries = get_plugin_manager(recipe.plugins.modules, base_dir=run.recipe_path.parent).collect()
    errors: list[str] = []
    sampler = build_component(
        registries.samplers, recipe.sample.sampler, recipe.sample.options, "recipe", "sample.sampler", errors
    )
    if sampler is None:
        raise UserError.collect(errors)
    probes = Probes.load(PROBES_DIR)
    specs = eval_prompts("eval", per_prompt=recipe.eval.seeds_per_prompt)
    stride = max(1, len(specs) // (recipe.eval.prompts * recipe.eval.seeds_per_prompt))
    specs = specs[::stride][: recipe.eval.prompts * recipe.eval.seeds_per_prompt]
    prompts, seeds = [s.prompt for s in specs], [s.seed for s in specs]
    pipelines = {
        "base": load_pipeline(recipe.model, sampler, registries),
        "adapted": load_pipeline(recipe.model, sampler, registries, run.run_dir),
    }
    figures: dict[str, Any] = {
        "style": style,
        "images": len(specs),
        "sampler": recipe.sample.sampler,
        "steps": recipe.sample.steps,
        "guidance": recipe.sample.guidance,
    }
    images = {}
    for name, pipeline in pipelines.items():
        images[name] = generate(pipeline, prompts, seeds, recipe.sample.steps, recipe.sample.guidance, batch_size=32)
        scores = score(probes, images[name], specs)
        figures[name] = {
            "target_style": scores[f"style_{style}"],
            "shape": scores["shape"],
            "colour": scores["colour"],
            "both": scores["both"],
        }
    figures["kept"] = {
        k: (figures["adapted"][k] / figures["base"][k] if figures["base"][k] else None)
        for k in ("shape", "colour", "both")
    }
    out = run.run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "embedded_probes.json").write_text(json.dumps(figures, indent=2))
    shown = min(8, len(specs))
    grid = make_grid([images["base"][:shown], images["adapted"][:shown]], ["base", f"adapted ({style})"])
    grid.save(out / "before-after.png")
    return figures


def print_table(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"held-out prompts, {figures['images']} images, {figures['sampler']} {figures['steps']} steps, "
        f"guidance {figures['guidance']}"
    )
    table.add_column("probe")
    table.add_column("base", justify="right")
    table.add_column("adapted", justify="right")
    labels = {
        "target_style": f"style = {figures['style']}",
        "shape": "shape right",
        "colour": "colour right",
        "both": "shape and colour right",
    }
    for key, label in labels.items():
        table.add_row(label, f"{figures['base'][key]:.0%}", f"{figures['adapted'][key]:.0%}")
    Console(highlight=False).print(table)
