"""A run: its folder (:class:`RunDir`, the one place that names every file in it), the :class:`Run`
lifecycle hooks receive, the :class:`TrainingResult` the trainer returns, and resume identity."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.recipe import Recipe, load_recipe
from adaptkit.recipe.dump import dump_toml

RECIPE_FILE = "recipe.toml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
ADAPTER_DIR = "adapter"
SAMPLES_DIR = "samples"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"
LOGS_DIR = "logs"
EXPORTS_DIR = "exports"
BEFORE_AFTER_PNG = "before-after.png"
MODEL_CARD = "README.md"


@dataclass(frozen=True)
class RunDir:
    """Every file and folder of one run folder, by name::

    recipe.toml  metrics.jsonl  result.json  adapter/ (+ README.md, the model card)
    checkpoints/step-NNNNNN/  samples/ (+ before-after.png)  eval/ (+ checkpoints/step-NNNNNN/)
    logs/ (trackers)  exports/
    """

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / RECIPE_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def result(self) -> Path:
        return self.root / RESULT_FILE

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER_DIR

    @property
    def model_card(self) -> Path:
        return self.adapter / MODEL_CARD

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_DIR

    @property
    def before_after(self) -> Path:
        return self.samples / BEFORE_AFTER_PNG

    @property
    def eval(self) -> Path:
        return self.root / EVAL_DIR

    def checkpoint_eval(self, checkpoint: str) -> Path:
        """Where one checkpoint's evaluation goes (``eval/checkpoints/step-NNNNNN``)."""
        return self.eval / CHECKPOINTS_DIR / checkpoint

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def exports(self) -> Path:
        return self.root / EXPORTS_DIR


def finite(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def to_json(data: Any, **options: Any) -> str:
    """Valid JSON for anything adaptkit writes: a non-finite float is written as ``null``."""
    return json.dumps(finite(data), allow_nan=False, **options)


def follow_umask(path: Path) -> None:
    """Give ``path`` (and everything under it) the mode the user's umask gives new files.

    safetensors 0.8's ``save_file`` creates its files with mode 0600 whatever the umask; weights a
    user shares (a result, an export) should be as readable as anything else they write.
    """
    mask = os.umask(0)
    os.umask(mask)
    paths = [Path(path), *Path(path).rglob("*")] if Path(path).is_dir() else [Path(path)]
    for item in paths:
        if item.is_symlink() or not item.exists():
            continue
        item.chmod((0o777 if item.is_dir() else 0o666) & ~mask)


def read_run_recipe(run_dir: Path, overrides: Sequence[str] = ()) -> Recipe:
    """The resolved recipe a run saved in its folder, with ``--set KEY=VALUE`` ``overrides`` applied."""
    path = RunDir(Path(run_dir)).recipe
    if not path.is_file():
        raise UserError(f"{run_dir}: not an adaptkit run directory (no {RECIPE_FILE})")
    return load_recipe(path, list(overrides))


@dataclass
class TrainingResult:
    """What one training session did; written to ``result.json`` and passed to ``on_train_end``."""

    steps: int
    steps_this_session: int
    final_loss: float
    wall_time_s: float
    images_per_s: float
    adapter_dir: str
    examples: int
    skipped_examples: int
    truncated_captions: int
    nonfinite_steps: int
    main_process: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        """Write ``result.json``."""
        path.write_text(to_json(self.to_dict(), indent=2, default=str), encoding="utf-8")


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
NOT_IDENTITY: dict[str, tuple[str, ...]] = {
    "data": ("cache_latents", "cache_text", "cache_dir", "cache_fill", "num_workers")
}


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

    Passed to lifecycle hooks. ``accelerator``, ``components`` and ``method`` are set by the
    trainer once it has built them; ``state`` is free for plugins to keep their own data in.
    """

    recipe: Recipe
    recipe_path: Path
    run_dir: Path
    accelerator: Any = None
    components: Any = None
    method: Any = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> RunDir:
        """The run folder's files by name."""
        return RunDir(self.run_dir)

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def trainer_state(self) -> dict[str, Any]:
        """The trainable weights by name, as the method names them (for plugins that inspect training)."""
        return self.method.trainable_state_dict(self.components)

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one row to ``metrics.jsonl``."""
        with self.dir.metrics.open("a", encoding="utf-8") as handle:
            handle.write(to_json(row) + "\n")

    def trim_metrics(self, step: int) -> int:
        """Drop the ``metrics.jsonl`` rows logged after ``step`` (and a torn last line), atomically;
        a run resumed from an older checkpoint logs those steps again. Returns how many were dropped."""
        path = self.dir.metrics
        if not path.is_file():
            return 0
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                dropped += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] > step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            os.replace(tmp, path)
        return dropped


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
