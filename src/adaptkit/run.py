"""The run directory and the :class:`Run` object lifecycle hooks receive."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.recipe import Recipe
from adaptkit.recipe_dump import dump_toml

RECIPE_FILE = "recipe.toml"
METRICS_FILE = "metrics.jsonl"
ADAPTER_DIR = "adapter"
SAMPLES_DIR = "samples"
CHECKPOINTS_DIR = "checkpoints"

#: Recipe sections whose change makes a checkpoint meaningless for resume.
IDENTITY_SECTIONS = ("model", "data", "method")

TRACKED_PACKAGES = ("adaptkit", "torch", "diffusers", "transformers", "accelerate", "datasets", "peft", "bitsandbytes")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


#: Keys inside the identity sections that change how fast a run trains, not what it trains.
NOT_IDENTITY: dict[str, tuple[str, ...]] = {"data": ("cache_latents", "cache_text", "cache_dir", "num_workers")}


def recipe_identity(recipe: Recipe) -> dict[str, Any]:
    """The recipe sections that define what is trained (model, data, method), without speed-only keys."""
    data = recipe.model_dump(mode="json", include=set(IDENTITY_SECTIONS))
    for section, keys in NOT_IDENTITY.items():
        for key in keys:
            data.get(section, {}).pop(key, None)
    return data


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of :func:`recipe_identity`."""
    return hashlib.sha256(json.dumps(recipe_identity(recipe), sort_keys=True).encode()).hexdigest()[:16]


def identity_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two recipe dumps, as ``section.key: old -> new``.

    A section key (``data.cache_dir``) missing from ``old`` was added to the recipe schema after
    the checkpoint was written, so it is not a difference; inside free-form tables such as
    ``method.options`` a missing key is one.
    """
    lines = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if key not in old and prefix.count(".") == 1:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines.extend(identity_diff(a, b, f"{path}."))
        elif a != b:
            lines.append(f"{path}: {a!r} -> {b!r}")
    return lines


def check_same_identity(manifest: dict[str, Any], recipe: Recipe, path: Path) -> None:
    """Refuse to resume a checkpoint made for another model, dataset or method (the caller allows --force)."""
    if manifest.get("recipe_hash") == recipe_hash(recipe):
        return
    old = manifest.get("identity")
    diff = identity_diff(old, recipe_identity(recipe)) if isinstance(old, dict) else [", ".join(IDENTITY_SECTIONS)]
    if diff:
        raise UserError(
            f"--resume {path}: the recipe differs from the checkpoint's in what is trained "
            f"({'; '.join(diff)}); pass --force to resume anyway"
        )


@dataclass
class Run:
    """One training run: its recipe, directory and (once set up) its live state.

    Passed to lifecycle hooks. ``accelerator`` and ``components`` are set by the trainer.
    """

    recipe: Recipe
    recipe_path: Path
    run_dir: Path
    accelerator: Any = None
    components: Any = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / ADAPTER_DIR

    @property
    def samples_dir(self) -> Path:
        return self.run_dir / SAMPLES_DIR

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def trainer_state(self) -> dict[str, Any]:
        """The trainable weights by name, as the method names them (for plugins that inspect training)."""
        trainer = self.state["trainer"]
        return trainer.method.trainable_state_dict(trainer.components)

    def log_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def prepare_run_dir(
    run_dir: Path, recipe: Recipe, *, resuming: bool, overwrite: bool, recipe_dir: Path | None = None
) -> None:
    """Create the run directory, refusing to mix two runs in one folder."""
    saved = run_dir / RECIPE_FILE
    if run_dir.exists() and any(run_dir.iterdir()) and not resuming:
        if not overwrite:
            raise UserError(
                f"{run_dir}: output directory already holds a run; pass --resume to continue it, "
                "--overwrite to replace it, or set run.name to another name"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resuming and saved.is_file():
        return
    write_resolved_recipe(saved, recipe, recipe_dir)


def write_resolved_recipe(path: Path, recipe: Recipe, recipe_dir: Path | None = None) -> None:
    """Save the recipe with defaults filled in; local plugin files become absolute paths so the
    saved copy still finds them (``adaptkit sample --adapter RUN_DIR``)."""
    if recipe_dir is not None:
        modules = [str((recipe_dir / m).resolve()) if m.endswith(".py") else m for m in recipe.plugins.modules]
        recipe = recipe.model_copy(update={"plugins": recipe.plugins.model_copy(update={"modules": modules})})
    header = "# resolved by adaptkit; package versions:\n" + "".join(
        f"#   {name} {version}\n" for name, version in package_versions().items()
    )
    path.write_text(header + dump_toml(recipe.model_dump(mode="json", exclude_none=True)) + "\n", encoding="utf-8")
