"""A Hugging Face model card (``README.md``) for a run's result.

YAML front matter (``base_model``, ``license`` of the base when known, ``tags``, ``datasets``,
``library_name``, ``pipeline_tag``) rendered by ``huggingface_hub.ModelCardData``, then: how to
load the result, the sample grids (copied next to the card so the folder is self-contained),
the training figures, the evaluation figures from ``eval/*.json`` and the resolved recipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from adaptkit.interop.metadata import RunInfo, metric_rows
from adaptkit.run import BEFORE_AFTER_PNG, RunDir

CARD_NAME = "README.md"
IMAGES_DIR = "images"
#: Licenses of well-known base models (Hub id -> license id on the Hub).
KNOWN_LICENSES = {
    "CompVis/stable-diffusion-v1-4": "creativeml-openrail-m",
    "runwayml/stable-diffusion-v1-5": "creativeml-openrail-m",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "creativeml-openrail-m",
    "stabilityai/stable-diffusion-2-1": "openrail++",
    "stabilityai/stable-diffusion-2-1-base": "openrail++",
    "stabilityai/stable-diffusion-2-base": "openrail++",
}
#: The models shipped in (or built by) adaptkit are under adaptkit's own license.
OWN_PREFIXES = ("embedded:", "testing:")
OWN_LICENSE = "apache-2.0"
LIBRARIES = {"lora": "diffusers", "full": "diffusers", "loha": "peft"}
TAGS = {"lora": ["lora"], "loha": ["loha", "lycoris"], "full": ["full-fine-tune"]}


def base_license(base: str) -> str | None:
    """The base model's license: a known Hub id, adaptkit's own models, or a local folder's card."""
    if base in KNOWN_LICENSES:
        return KNOWN_LICENSES[base]
    if base.startswith(OWN_PREFIXES):
        return OWN_LICENSE
    readme = Path(base) / CARD_NAME
    if readme.is_file():
        from huggingface_hub import ModelCard

        license_id = ModelCard.load(readme).data.to_dict().get("license")
        return str(license_id) if license_id else None
    return None


def dataset_ids(info: RunInfo) -> list[str]:
    """The training data's source, when it is a Hub dataset id (not a local path)."""
    source = info.recipe.data.options.get("source")
    if source is None:
        from adaptkit.plugins import get_plugin_manager

        registries = get_plugin_manager(info.recipe.plugins.modules).collect()
        if info.recipe.data.adapter in registries.datasets:
            options_cls = registries.datasets.get(info.recipe.data.adapter).cls.Options
            field = options_cls.model_fields.get("source")
            source = field.default if field is not None and isinstance(field.default, str) else None
    if not source or Path(source).exists() or source.count("/") != 1:
        return []
    return [source]


def render_card(info: RunInfo, images: list[str], result: dict[str, Any] | None = None) -> str:
    """The card's text; ``images`` are paths relative to the card."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        base_model=info.base_model,
        license=base_license(info.base_model),
        library_name=LIBRARIES.get(info.method),
        pipeline_tag="text-to-image",
        datasets=dataset_ids(info) or None,
        tags=["adaptkit", "stable-diffusion", "text-to-image", *TAGS.get(info.method, [info.method])],
    )
    sections = [
        f"---\n{data.to_yaml()}\n---",
        f"# {info.name}\n\n{_summary(info)}",
        "## How to use\n\n" + _usage(info),
    ]
    if images:
        sections.append("## Samples\n\n" + "\n\n".join(f"![{Path(i).stem}]({i})" for i in images))
    sections.append("## Training\n\n" + _table(_training_figures(info, result)))
    evaluation = _evaluation(RunDir(info.run_dir).eval)
    if evaluation:
        sections.append("## Evaluation\n\n" + evaluation)
    recipe = (info.run_dir / "recipe.toml").read_text(encoding="utf-8").strip()
    sections.append(f"## Recipe\n\n```toml\n{recipe}\n```")
    return "\n\n".join(sections) + "\n"


def write_card(info: RunInfo, out: Path, result: dict[str, Any] | None = None) -> Path:
    """Write the card at ``out`` (a ``README.md``), the sample grids copied into ``images/`` beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for source in _sample_images(info.run_dir):
        target = out.parent / IMAGES_DIR / f"{source.parent.name}-{source.name}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
        images.append(f"{IMAGES_DIR}/{target.name}")
    out.write_text(render_card(info, images, result), encoding="utf-8")
    return out


def _summary(info: RunInfo) -> str:
    options = ", ".join(f"{k} = {v}" for k, v in info.recipe.method.options.items()) or "defaults"
    return (
        f"A **{info.method}** adaptation of `{info.base_model}` (model family `{info.family.name}`) "
        f"to the `{info.recipe.data.adapter}` dataset, "
        f"trained with adaptkit for {info.steps} steps "
        f"(method options: {options}; recipe hash `{info.recipe_hash}`)."
    )


def _usage(info: RunInfo) -> str:
    pipeline = info.family.pipeline_class().__name__
    if info.method == "lora":
        code = (
            f"from diffusers import {pipeline}\n\n"
            f'pipe = {pipeline}.from_pretrained("{info.base_model}")\n'
            'pipe.load_lora_weights("path/to/this/folder")'
        )
    elif info.method == "full":
        code = f'from diffusers import {pipeline}\n\npipe = {pipeline}.from_pretrained("path/to/this/folder")'
    else:
        code = ""
    text = f"```python\n{code}\n```\n\n" if code else ""
    other = "single-file" if info.method == "full" else "kohya"
    return text + (
        f'With adaptkit: `adaptkit sample --adapter {info.run_dir} --prompt "..."`; for A1111, Forge or ComfyUI: '
        f"`adaptkit export {info.run_dir} --format {other}`."
    )


def _training_figures(info: RunInfo, result: dict[str, Any] | None) -> dict[str, Any]:
    train = info.recipe.train
    figures: dict[str, Any] = {
        "steps": info.steps,
        "batch size": train.batch_size,
        "learning rate": train.learning_rate,
        "resolution": info.recipe.data.resolution,
        "mixed precision": train.mixed_precision,
        "seed": train.seed,
    }
    losses = [row["loss"] for row in metric_rows(info.run_dir) if "loss" in row]
    if losses:
        figures["final loss"] = losses[-1]
    for key in ("wall_time_s", "images_per_s"):
        if result and key in result:
            figures[key.replace("_", " ")] = result[key]
    return figures


def _evaluation(eval_dir: Path) -> str:
    """Every ``eval/*.json`` (``metrics.json``, ``embedded_probes.json``, ...) as a table of its figures."""
    parts = []
    for path in sorted(eval_dir.glob("*.json")) if eval_dir.is_dir() else []:
        try:
            figures = _flatten(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue
        if figures:
            parts.append(f"`{path.name}`:\n\n{_table(figures)}")
    return "\n\n".join(parts)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(data, (int, float, str, bool)) or data is None:
        return {prefix.rstrip("."): data}
    return {}


def _table(figures: dict[str, Any]) -> str:
    lines = ["| figure | value |", "|---|---|"]
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)


def _sample_images(run_dir: Path) -> list[Path]:
    """The final before/after grids: ``samples/before-after.png`` and ``eval/before-after.png``."""
    files = RunDir(run_dir)
    return [p for p in (files.before_after, files.eval / BEFORE_AFTER_PNG) if p.is_file()]
