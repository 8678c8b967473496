"""A checkpoint as a usable model: ``--checkpoint step-N`` for ``adaptkit sample`` and ``export``,
and ``adaptkit eval --checkpoints``. The checkpoint's weights (its EMA weights when the run kept an
EMA, as the run's result holds them) loaded into the base with the run's method prepared."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError
from adaptkit.training.checkpoint import (
    PREFIX,
    checkpoint_name,
    checkpoint_problem,
    is_complete,
    list_checkpoints,
    load_checkpoint,
    newest_complete,
)


def split_checkpoint_path(path: Path) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint)`` for ``RUN_DIR/checkpoints/step-NNNNNN`` given where a run folder is
    expected; ``(path, None)`` for anything else."""
    from adaptkit.run import CHECKPOINTS_DIR, RECIPE_FILE

    path = Path(path)
    run_dir = path.parent.parent
    if path.name.startswith(PREFIX) and path.parent.name == CHECKPOINTS_DIR and (run_dir / RECIPE_FILE).is_file():
        return run_dir, path
    return path, None


def find_checkpoint(root: Path, given: str, option: str = "--checkpoint") -> Path:
    """The complete checkpoint ``given`` names: ``latest``, a folder name under ``root`` (``step-000200``,
    or ``step-200``), or a path to a checkpoint folder; else a one-line UserError naming ``option``, what
    is wrong (the file that failed its hash) and the checkpoints there are."""
    complete = [p.name for p in list_checkpoints(root) if is_complete(p, verify_hashes=False)]
    available = f"checkpoints in {root}: {', '.join(complete)}" if complete else f"{root} holds no complete checkpoint"
    if given == "latest":
        path = newest_complete(root, warn=True)
        if path is None:
            raise UserError(f"{option} latest: {available}")
        return path
    candidates = [Path(given), root / given]
    step = given[len(PREFIX) :] if given.startswith(PREFIX) else given
    if step.isdigit():
        candidates.append(root / checkpoint_name(int(step)))
    path = next((c for c in candidates if c.is_dir()), None)
    if path is None:
        raise UserError(
            f"{option} {given}: no such checkpoint (want latest, step-N or a checkpoint folder; {available})"
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        raise UserError(f"{option} {given}: {path} is not a complete checkpoint ({problem}; {available})")
    return path


@dataclass
class CheckpointModel:
    """A run's method and base components holding one checkpoint's weights, ready to sample or save."""

    method: Any
    components: Any
    step: int


def checkpoint_model(
    path: Path, recipe: Any, registries: Any, model: Any = None, option: str = "--checkpoint"
) -> CheckpointModel:
    """The base model (``model``, default the recipe's ``[model]``) with ``recipe``'s method prepared and
    the weights saved in checkpoint ``path`` loaded: its EMA weights when the run kept an EMA (as the
    run's result holds them), else the trainable weights as trained. Every module is in eval mode."""
    from adaptkit.training.ema import copy_ema_weights

    contents = load_checkpoint(Path(path), option)  # before the model loads: a bad checkpoint fails fast
    loaded, trainable = model_with_weights(recipe, registries, contents.trainable, model)
    if recipe.ema.enabled:
        copy_ema_weights(contents.state.get("ema"), trainable, f"{option} {path}")
    return replace(loaded, step=contents.step)


def model_with_weights(
    recipe: Any, registries: Any, weights: dict[str, Any], model: Any = None
) -> tuple[CheckpointModel, list[Any]]:
    """A fresh copy of the base (``model``, default the recipe's) with ``recipe``'s method prepared and
    holding ``weights`` (as the method's ``trainable_state_dict`` names them), in eval mode; and the
    method's trainable parameters."""
    from adaptkit.sampling.pipeline import run_components, run_method

    method = run_method(registries, recipe, "recipe")
    components = run_components(model if model is not None else recipe.model, recipe)
    trainable = method.prepare(components)
    method.load_trainable_state_dict(components, weights)
    for module in (*components.parts().values(), components.vae):
        module.eval().requires_grad_(False)
    return CheckpointModel(method, components, 0), trainable
