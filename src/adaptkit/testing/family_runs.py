"""Runs of a model family's base through adaptkit and through diffusers' own loaders, for the
:class:`~adaptkit.testing.family_contract.ModelFamilyContract`: train (straight, or stopped and resumed),
generate fixed-seed images with adaptkit's sampler, and the same with the family's pipeline
class loading the result (``load_lora_weights``) the way users of other tools would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

#: What every contract run generates: two prompts x two seeds, 3 steps at 32 px.
PROMPTS, SEEDS = ["a ninja", "a ninja", "a boy", "a boy"], [0, 1, 0, 1]
#: The sampler each training objective is checked with.
SAMPLERS = {"ddpm": "dpm-solver", "flow": "flow-euler"}
#: The contract LoRA: gaussian init, so its effect is visible after a few steps.
LORA = {"rank": 4, "alpha": 8, "init_weights": "gaussian"}


def family_of(base: Path) -> Any:
    """The model family that recognises ``base``."""
    from adaptkit.models.family import choose_family
    from adaptkit.models.source import resolve_base
    from adaptkit.recipe import ModelSection

    model = ModelSection(base=str(base))
    return choose_family(resolve_base(model), model)


def family_sampler(base: Path) -> Any:
    """The sampler the contract uses for ``base``'s family (DPM-Solver for DDPM, flow-Euler for flow)."""
    from adaptkit.plugins import get_plugin_manager

    return get_plugin_manager().collect().samplers.get(SAMPLERS[family_of(base).objective]).cls()


def write_family_recipe(folder: Path, base: Path, name: str, method: str = "lora", **method_options: Any) -> Path:
    """A 4-step recipe (32 px, batch 2, checkpoints every 2 steps) on ``base`` and 4 naruto-style rows:
    a rank-4 LoRA with ``method_options``, or ``method`` with only those options."""
    from adaptkit.recipe.dump import dump_toml
    from adaptkit.testing.datasets import write_naruto

    data = folder / "naruto"
    if not data.exists():
        write_naruto(data, rows=4)
    recipe = {
        "run": {"name": name, "output_dir": str(folder / "runs")},
        "model": {"base": str(base)},
        "data": {"adapter": "naruto", "resolution": 32, "options": {"source": str(data)}},
        "method": {"name": method, "options": {**(LORA if method == "lora" else {}), **method_options}},
        "train": {"steps": 4, "batch_size": 2, "learning_rate": 1e-3, "log_every": 2, "seed": 3},
        "checkpoint": {"every": 2},
        "sample": {
            "sampler": SAMPLERS[family_of(base).objective],
            "steps": 2,
            "guidance": 2.0,
            "prompts": ["a ninja"],
            "seeds": [0],
        },
    }
    path = folder / f"{name}.toml"
    path.write_text(dump_toml(recipe))
    return path


def train(recipe: Path, *overrides: str, resume: str | None = None) -> Path:
    """Train ``recipe`` (with ``key=value`` overrides) in this process; its run folder."""
    from adaptkit.resolve import load_and_resolve
    from adaptkit.training.trainer import train_recipe

    resolved = load_and_resolve(recipe, list(overrides))
    train_recipe(resolved, resume=resume, show_progress=False)
    return Path(resolved.run_dir)


def adapter_tensors(run_dir: Path) -> dict[str, "torch.Tensor"]:
    """Every tensor of the run's ``adapter/`` safetensors files, by file and key."""
    from safetensors.torch import load_file

    files = sorted((run_dir / "adapter").rglob("*.safetensors"))
    return {f"{path.name}:{key}": value for path in files for key, value in load_file(str(path)).items()}


def generate(pipeline: Any, prompts: "Sequence[str]" = PROMPTS) -> "torch.Tensor":
    """The contract's fixed-seed images from ``pipeline`` as one (4, 32, 32, 3) tensor (``prompts``:
    four, one per seed of :data:`SEEDS`)."""
    import numpy
    import torch

    from adaptkit.sampling.generate import GenerationSettings, generate_images

    settings = GenerationSettings(steps=3, guidance=3.0, resolution=32)
    return torch.from_numpy(numpy.stack(generate_images(pipeline, list(prompts), SEEDS, settings, "np")))


def adaptkit_images(base: Path, run_dir: Path | None, prompts: "Sequence[str]" = PROMPTS) -> "torch.Tensor":
    """Images from adaptkit's own sampling pipeline (the run's adapter applied, when given)."""
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.sampling.pipeline import load_pipeline

    registries = get_plugin_manager().collect()
    pipeline = load_pipeline(ModelSection(base=str(base)), family_sampler(base), registries, run_dir)
    return generate(pipeline, prompts)


def single_file_pipeline(pipeline_class: type, location: Path, config: Path | None, base: Path) -> Any:
    """``pipeline_class.from_single_file(location, config=config)`` (or ``from_pretrained`` of a folder
    when ``config`` is None), offline, with the contract's scheduler for ``base``'s family."""
    import inspect

    options = {"safety_checker": None} if "safety_checker" in inspect.signature(pipeline_class).parameters else {}
    options.update(family_of(base).load_options(_model(base), _index(location)))
    if config is None:
        pipeline = pipeline_class.from_pretrained(str(location), local_files_only=True, **options)
    else:
        pipeline = pipeline_class.from_single_file(str(location), config=str(config), local_files_only=True, **options)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.scheduler = family_sampler(base).build(dict(pipeline.scheduler.config))
    return pipeline


def _model(base: Path) -> Any:
    from adaptkit.recipe import ModelSection

    return ModelSection(base=str(base))


def _index(location: Path) -> dict[str, Any] | None:
    import json

    index = Path(location) / "model_index.json"
    return json.loads(index.read_text()) if index.is_file() else None


def diffusers_images(pipeline_class: type, base: Path, lora: Path | None = None) -> "torch.Tensor":
    """Images from ``pipeline_class.from_pretrained(base)`` with ``load_lora_weights(lora)``, as a user would."""
    pipeline = single_file_pipeline(pipeline_class, base, None, base)
    if lora is not None:
        pipeline.load_lora_weights(str(lora))
    return generate(pipeline)


def assert_kohya_prefixes(kohya: Path, base: Path) -> None:
    """The kohya file names the denoiser ``lora_unet_`` and the text encoders a text-encoder LoRA adapts
    (the family's ``lora_text_encoders``) as A1111/ComfyUI expect: ``lora_te_`` for one, ``lora_te1_``/``lora_te2_``
    for two."""
    from safetensors import safe_open

    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    components = load_base_model(ModelSection(base=str(base)))
    encoders = len(components.family.lora_text_encoders or components.text_encoders())
    expected = {"lora_unet"} | ({"lora_te"} if encoders == 1 else {f"lora_te{i + 1}" for i in range(encoders)})
    with safe_open(str(kohya), framework="pt") as handle:
        found = {key.split("_text_model_")[0] if "_text_model_" in key else "lora_unet" for key in handle.keys()}
    assert found == expected, found


def export_adapter(run_dir: Path, fmt: str = "kohya") -> Path:
    """``adaptkit export RUN --format FMT``: the file (or folder) written."""
    from adaptkit.interop.export import export_run

    return export_run(run_dir, fmt)


def import_adapter(path: Path, base: Path, out_dir: Path) -> Path:
    """``adaptkit import FILE --base BASE --out OUT``: the run folder written."""
    from adaptkit.interop.importer import import_file
    from adaptkit.recipe import ModelSection

    return import_file(path, ModelSection(base=str(base)), out_dir)[0]
