"""What an export says about the run that made it: a :class:`RunInfo` and the safetensors header.

Every exported ``.safetensors`` file carries the base model, method, rank, alpha, recipe hash and
training steps under ``adaptkit.*`` keys, plus the ``ss_*`` / ``modelspec.*`` keys that kohya's
sd-scripts writes and A1111, Forge and ComfyUI show in their LoRA browsers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from adaptkit.component import KohyaModule, ModelFamily
    from adaptkit.recipe import Recipe


@dataclass(frozen=True)
class RunInfo:
    """A finished run as exports and model cards see it."""

    run_dir: Path
    recipe: "Recipe"
    steps: int
    recipe_hash: str

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def method(self) -> str:
        return self.recipe.method.name

    @property
    def base_model(self) -> str:
        return self.recipe.model.base

    @cached_property
    def family(self) -> "ModelFamily":
        """The base's model family (``model.family``, or detected from the base without loading it)."""
        from adaptkit.models.family import choose_family
        from adaptkit.models.source import resolve_base

        return choose_family(resolve_base(self.recipe.model), self.recipe.model)

    @cached_property
    def _component_config(self) -> "Callable[[str], dict[str, Any]]":
        from adaptkit.models.family import component_config_reader
        from adaptkit.models.source import resolve_base

        return component_config_reader(resolve_base(self.recipe.model), self.recipe.model)

    @property
    def denoiser_part(self) -> str:
        """``transformer`` when the base has one (its config is readable), else ``unet``."""
        return "transformer" if self._component_config("transformer") else "unet"

    def kohya_modules(self) -> "list[KohyaModule] | None":
        """The family's own kohya layout of the denoiser, from the base's denoiser config (read
        without loading weights); None: the generic layout."""
        return self.family.kohya_modules(self._component_config(self.denoiser_part))

    @property
    def adapter_dir(self) -> Path:
        from adaptkit.run import ADAPTER_DIR

        return self.run_dir / ADAPTER_DIR


def read_run(run_dir: Path) -> RunInfo:
    """The recipe, step count and recipe hash of the run in ``run_dir``, which must have finished."""
    from adaptkit.run import ADAPTER_DIR, read_run_recipe, recipe_hash

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    recipe = read_run_recipe(run_dir)
    if not (run_dir / ADAPTER_DIR).is_dir():
        raise UserError(f"{run_dir}: the run has no {ADAPTER_DIR}/ folder (did it finish?)")
    return RunInfo(run_dir, recipe, trained_steps(run_dir, recipe.train.steps), recipe_hash(recipe))


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of the run's ``metrics.jsonl``, read by :func:`read_metrics`."""
    from adaptkit.run import METRICS_FILE

    return read_metrics(Path(run_dir) / METRICS_FILE)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file (none when it is missing), the one reader of that file.

    Lines that are not JSON objects (e.g. a last line torn by a run killed mid-write, even inside
    a multi-byte character) are left out.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def trained_steps(run_dir: Path, default: int) -> int:
    """The last step logged in ``metrics.jsonl`` (``default`` when there is none)."""
    steps = default
    for row in metric_rows(run_dir):
        try:
            steps = int(row.get("step", steps))
        except (TypeError, ValueError):
            continue
    return steps


def header_metadata(info: RunInfo, *, rank: int | None, alpha: float | None, network: str | None) -> dict[str, str]:
    """Safetensors header entries (all strings) describing ``info``'s result.

    ``network`` is the kohya ``ss_network_module`` (``networks.lora``, ``lycoris.kohya``), or None
    for a checkpoint, which gets no ``ss_network_*`` keys.
    """
    from adaptkit import __version__

    data: dict[str, Any] = {
        "adaptkit.version": __version__,
        "adaptkit.base_model": info.base_model,
        "adaptkit.method": info.method,
        "adaptkit.recipe_hash": info.recipe_hash,
        "adaptkit.training_steps": info.steps,
        "adaptkit.run_name": info.name,
        "ss_sd_model_name": info.base_model,
        "ss_base_model_version": info.family.model_spec[0],
        "ss_max_train_steps": info.steps,
        "ss_steps": info.steps,
        "ss_output_name": info.name,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": info.family.model_spec[1] + (f"/{info.method}" if network else ""),
        "modelspec.implementation": "diffusers",
        "modelspec.title": info.name,
    }
    if rank is not None:
        data.update({"adaptkit.rank": rank, "ss_network_dim": rank})
    if alpha is not None:
        data.update({"adaptkit.alpha": alpha, "ss_network_alpha": alpha})
    if network is not None:
        data["ss_network_module"] = network
        if network.startswith("lycoris"):
            data["ss_network_args"] = json.dumps({"algo": info.method})
    return {key: str(value) for key, value in data.items()}


def write_safetensors(path: Path, state: dict[str, "torch.Tensor"], metadata: dict[str, str]) -> Path:
    """Write ``state`` (contiguous CPU tensors) with ``metadata`` in the header, with the umask's mode;
    create the parent folder."""
    from safetensors.torch import save_file

    from adaptkit.run import follow_umask

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    follow_umask(path)
    return path
