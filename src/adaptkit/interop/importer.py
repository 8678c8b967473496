"""Bring a kohya LoRA or LyCORIS LoHa ``.safetensors`` file in: onto a loaded model, or as a run folder.

:func:`load_onto` injects the file's adapter into a model's UNet (and text encoder) with exactly
the file's weights, ranks and alphas; :func:`import_file` writes it as a run folder
(``recipe.toml`` + ``adapter/`` in the native format) that ``adaptkit sample --adapter`` and
``adaptkit export`` read; ``[method.options] init_from`` starts training from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError
from adaptkit.interop import kohya_lora, lycoris_loha
from adaptkit.interop.kohya_keys import DENOISER_PARTS, PartAdapter, from_kohya

if TYPE_CHECKING:
    import torch

    from adaptkit.component import KohyaModule
    from adaptkit.models import SDComponents
    from adaptkit.recipe import ModelSection

#: Method name -> (format module, marker weight in the file).
KINDS = {"lora": (kohya_lora, "lora_down.weight"), "loha": (lycoris_loha, "hada_w1_a")}
WHAT = {
    "unet": "UNet",
    "transformer": "transformer",
    "text_encoder": "text encoder",
    "text_encoder_2": "second text encoder",
}
#: Header keys holding the training steps (adaptkit's, then sd-scripts').
STEP_KEYS = ("adaptkit.training_steps", "ss_steps", "ss_max_train_steps")


@dataclass(frozen=True)
class Imported:
    """What :func:`load_onto` found in a file."""

    method: str
    rank: int
    alpha: float
    parts: dict[str, PartAdapter]
    #: The UNet modules adapted, as the shortest ``target_modules`` that selects exactly them.
    targets: list[str]
    #: Training steps from the file's header (adaptkit's or sd-scripts'), when it says.
    steps: int | None = None


def short_targets(paths: list[str], names: list[str]) -> list[str]:
    """Module-name suffixes (``to_q``, ``to_out.0``) selecting exactly ``paths`` among ``names``, else ``paths``.

    peft matches a target against a module's full name or a ``.``-separated suffix of it.
    """
    suffixes = sorted(
        {".".join(path.split(".")[-2:]) if path.split(".")[-1].isdigit() else path.split(".")[-1] for path in paths}
    )
    chosen = {name for name in names if any(name == s or name.endswith(f".{s}") for s in suffixes)}
    return suffixes if chosen == set(paths) else list(paths)


def detect(path: Path, state: dict[str, "torch.Tensor"]) -> str:
    """``lora`` or ``loha`` from the file's weight names; anything else is a UserError."""
    for method, (_, marker) in KINDS.items():
        if any(key.endswith(f".{marker}") for key in state):
            return method
    example = next(iter(state), "no tensors")
    raise UserError(
        f"{path}: not a kohya LoRA (lora_down/lora_up) or LyCORIS LoHa (hada_w1_a…) file (first key: {example})"
    )


def existing_file(path: str | Path) -> Path:
    """``path`` when it is a file; else a one-line UserError (checked before any model loads)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return path


def read_adapter_file(
    path: Path, modules: dict[str, "torch.nn.Module"], denoiser_modules: "list[KohyaModule] | None" = None
) -> Imported:
    """The adapter in ``path`` (kohya LoRA or LyCORIS LoHa), resolved against ``modules`` by part (the
    denoiser's through its family's ``denoiser_modules`` layout, when it has one)."""
    from adaptkit.interop.kohya_keys import common_value
    from adaptkit.interop.peft_files import read_safetensors

    path = existing_file(path)
    state, header = read_safetensors(path)
    method = detect(path, state)
    layout = KINDS[method][0].LAYOUT
    parts = from_kohya(state, modules, layout, path, denoiser_modules)
    denoiser = next((part for part in DENOISER_PARTS if part in modules), "unet")
    if denoiser not in parts:
        raise UserError(f"{path}: adapts no {WHAT[denoiser]} module (adaptkit's adapters always adapt the denoiser)")
    if method == "loha" and set(parts) - {denoiser}:
        raise UserError(f"{path}: a text-encoder LoHa is not supported (adaptkit's loha adapts the denoiser only)")
    adapted = parts[denoiser]
    targets = short_targets(adapted.modules, [name for name, _ in modules[denoiser].named_modules()])
    steps = next((int(header[k]) for k in STEP_KEYS if header.get(k, "").isdigit()), None)
    rank, alpha = int(common_value(adapted.ranks)), float(common_value(adapted.alphas))
    return Imported(method, rank, alpha, parts, targets, steps)


def family_layout(components: "SDComponents") -> "list[KohyaModule] | None":
    """The kohya layout of the loaded denoiser, when its family has its own."""
    return components.family.kohya_modules(dict(components.denoiser.config))


def load_onto(path: Path, components: "SDComponents") -> Imported:
    """Inject ``path``'s adapter into ``components`` (UNet, text encoders) with exactly its weights."""
    from adaptkit.interop.peft_files import load_adapter

    modules = components.parts()
    imported = read_adapter_file(path, modules, family_layout(components))
    module_format = KINDS[imported.method][0]
    for part, adapter in imported.parts.items():
        load_adapter(modules[part], module_format.peft_config(adapter), adapter.state, Path(path), WHAT[part])
    return imported


def method_options(imported: Imported) -> dict[str, Any]:
    """``[method.options]`` for a recipe that trains the imported adapter further (same ranks and targets)."""
    options: dict[str, Any] = {"rank": imported.rank, "alpha": imported.alpha, "target_modules": imported.targets}
    if imported.method == "lora" and set(imported.parts) - set(DENOISER_PARTS):
        options["text_encoder"] = True
    if imported.method == "loha" and any(k.endswith(".hada_t1") for p in imported.parts.values() for k in p.state):
        options["use_effective_conv2d"] = True
    return options


def trained_resolution(components: "SDComponents") -> int:
    """The base's image size: the denoiser's ``sample_size`` in pixels, or the family's native resolution."""
    latent = components.denoiser.config.get("sample_size")
    if not isinstance(latent, int):
        return components.family.native_resolution
    return latent * 2 ** (len(components.vae.config.block_out_channels) - 1)


def import_file(path: Path, model: "ModelSection", out_dir: Path) -> tuple[Path, Imported]:
    """Write ``path``'s adapter as a run folder at ``out_dir``: ``adapter/`` (native format) and ``recipe.toml``.

    The recipe names ``model`` and the imported method; its ``[data]`` is a placeholder to replace
    before training (sampling and exporting need none).
    """
    from adaptkit.models import load_base_model
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import Recipe
    from adaptkit.run import ADAPTER_DIR, RECIPE_FILE, write_resolved_recipe

    existing_file(path)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"--out {out_dir}: already exists and is not empty; choose a new folder")
    components = load_base_model(model)
    imported = load_onto(path, components)
    method_cls = get_plugin_manager().collect().methods.get(imported.method).cls
    method_cls().save(components, out_dir / ADAPTER_DIR)
    recipe = Recipe.model_validate(
        {
            "run": {"name": out_dir.name, "output_dir": str(out_dir.parent)},
            "model": model.model_dump(exclude_none=True),
            "data": {
                "adapter": "imagefolder",
                "resolution": trained_resolution(components),
                "options": {"source": "REPLACE-WITH-YOUR-IMAGES"},
            },
            "method": {
                "name": imported.method,
                "options": {**method_options(imported), "init_from": str(Path(path).resolve())},
            },
            **({"train": {"steps": imported.steps}} if imported.steps else {}),
        }
    )
    write_resolved_recipe(out_dir / RECIPE_FILE, recipe)
    return out_dir, imported


def init_from_file(path: str | Path, components: "SDComponents", method: str) -> None:
    """Copy a kohya/LyCORIS file's weights into the adapters ``method`` injected (``init_from``).

    The file must hold a ``method`` adapter with the same modules, ranks and scales (alpha / rank):
    anything else is a one-line UserError naming the file and the first difference.
    """
    from adaptkit.interop.peft_files import ADAPTER_NAME, load_adapter_state

    path = Path(path)
    key = f"method.options.init_from {path}"
    modules = components.parts()
    imported = read_adapter_file(path, modules, family_layout(components))
    if imported.method != method:
        raise UserError(f"{key}: holds a {imported.method} adapter, the recipe trains {method}")
    for part, module in modules.items():
        injected = {name for name, layer in module.named_modules() if ADAPTER_NAME in getattr(layer, "scaling", {})}
        adapter = imported.parts.get(part, PartAdapter({}, {}, {}))
        if set(adapter.modules) != injected:
            differ = sorted(set(adapter.modules) ^ injected)
            raise UserError(
                f"{key}: adapts {len(adapter.modules)} {WHAT[part]} modules, the recipe {len(injected)} "
                f"(e.g. {differ[0]}); use the rank, alpha and target_modules `adaptkit import` prints"
            )
        for name in injected:
            scaling = module.get_submodule(name).scaling[ADAPTER_NAME]
            wanted = adapter.alphas[name] / adapter.ranks[name]
            if abs(scaling - wanted) > 1e-6 * max(1.0, wanted):
                raise UserError(
                    f"{key}: module {name} has alpha/rank {wanted:g} in the file, {scaling:g} in the recipe "
                    "(set method.options.rank and alpha as in the file)"
                )
        if not injected:
            continue
        load_adapter_state(module, adapter.state, key, f"recipe's {WHAT[part]} adapter")
