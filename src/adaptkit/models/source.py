"""What a recipe's ``[model] base`` names, checked before anything heavy is loaded.

``base`` is one of: a Hub id (``CompVis/stable-diffusion-v1-4``), a local diffusers folder,
a single-file checkpoint (``.safetensors``; pickle formats only with ``allow_pickle``), or a
named base model ``<name>:<model>`` that a plugin registers through ``register_base_models``
(``embedded:tiny-sd`` from the embedded world, ``testing:tiny-sd`` / ``testing:sd15-random`` from
:mod:`adaptkit.testing.bases`), which names a diffusers folder.
Every mistake is a one-line :class:`~adaptkit.errors.UserError` naming ``model.base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.plugins import Registry
    from adaptkit.recipe import ModelSection

#: ``named``: a registered ``<name>:<model>`` base model (``extra["scheme"]`` says which).
SourceKind = Literal["hub", "folder", "single_file", "named"]

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
SINGLE_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
#: Pipeline parts checked when ``model_index.json`` cannot be read (an SD v1 folder's); the first three hold weights.
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED_COMPONENTS = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class BaseSource:
    """Where the base model comes from: ``kind`` and ``location`` (a Hub id or an absolute path)."""

    kind: SourceKind
    location: str
    given: str


def resolve_base(model: "ModelSection", named: "Registry | None" = None) -> BaseSource:
    """Decide what ``model.base`` names and check local sources; raise a one-line UserError on mistakes.

    ``named`` is the registry of named base models (default: the installed plugins').
    """
    base = model.base.strip()
    scheme, colon, name = base.partition(":")
    if colon and "/" not in scheme and "\\" not in scheme and len(scheme) > 1:
        named = named if named is not None else _named_base_models()
        if scheme in named:
            return _named(named.get(scheme).cls(), name, base)
    path = Path(base).expanduser()
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        return _single_file(base, path, model.allow_pickle)
    if path.is_dir():
        check_pipeline_folder(path, model.allow_pickle)
        return BaseSource("folder", str(path.resolve()), base)
    if path.exists():
        raise UserError(f"model.base: {path} is neither a diffusers folder nor a .safetensors checkpoint")
    if _looks_like_path(base):
        raise UserError(f"model.base: no such folder or file: {base}")
    if not _is_hub_id(base):
        raise UserError(
            f"model.base: {base!r} is not a Hub id (owner/name), an existing folder or file, "
            f"or a named base model ({', '.join(f'{n}:<model>' for n in _named_base_models().names())})"
        )
    return BaseSource("hub", base, base)


def check_pipeline_folder(folder: Path, allow_pickle: bool) -> None:
    """Check that ``folder`` is a diffusers SD pipeline with weights in an allowed format."""
    if not (folder / "model_index.json").is_file():
        raise UserError(f"model.base: {folder} is not a diffusers pipeline folder (no model_index.json)")
    required, weighted = _components_of(folder)
    for name in required:
        if not (folder / name).is_dir():
            raise UserError(f"model.base: {folder} is missing the '{name}' component (no {name}/ folder)")
    for name in weighted:
        files = sorted(p for p in (folder / name).iterdir() if p.is_file())
        if any(p.suffix == ".safetensors" for p in files):
            continue
        pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
        if not pickles:
            raise UserError(
                f"model.base: {folder} has no weights for the '{name}' component (no .safetensors in {name}/)"
            )
        if not allow_pickle:
            raise UserError(_pickle_refusal(pickles[0]))


def _components_of(folder: Path) -> tuple[list[str], list[str]]:
    """The components ``model_index.json`` lists (not null), and those of them that hold weights
    (a model: ``config.json`` in its folder, or a UNet/transformer/VAE/text encoder by name)."""
    import json

    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return list(REQUIRED_COMPONENTS), list(WEIGHTED_COMPONENTS)
    listed = [
        name
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] is not None
    ]
    if not listed:
        return list(REQUIRED_COMPONENTS), list(WEIGHTED_COMPONENTS)
    models = ("unet", "transformer", "vae", "text_encoder")
    weighted = [n for n in listed if n.startswith(models) or (folder / n / "config.json").is_file()]
    return listed, weighted


def _named_base_models() -> "Registry":
    from adaptkit.plugins import get_plugin_manager

    return get_plugin_manager().collect().base_models


def _named(source, name: str, base: str) -> BaseSource:
    available = source.models()
    if name not in available:
        listed = ", ".join(f"{source.name}:{n}" for n in available) if available else "none in this installation"
        raise UserError(f"model.base: no {source.name} model {name!r} (available: {listed})")
    folder = source.locate(name)
    check_pipeline_folder(folder, allow_pickle=False)
    return BaseSource("named", str(folder), base)


def _single_file(base: str, path: Path, allow_pickle: bool) -> BaseSource:
    if not path.is_file():
        raise UserError(f"model.base: no such checkpoint file: {path}")
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UserError(_pickle_refusal(path))
    if path.suffix.lower() == ".safetensors":
        check_safetensors_header(path)
    return BaseSource("single_file", str(path.resolve()), base)


def check_safetensors_header(path: Path) -> None:
    """Read ``path``'s safetensors header (not its tensors); a file that has none (garbage, empty, cut
    short in its header) is a one-line UserError, before diffusers tries to make sense of it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise UserError(
            f"model.base: {path} is not a readable safetensors checkpoint ({reason}); "
            "give a complete .safetensors Stable Diffusion checkpoint, a diffusers folder or a Hub id"
        ) from exc


def _pickle_refusal(path: Path) -> str:
    return (
        f"model.base: {path} is a pickle file, which can run code when loaded; "
        "convert it to .safetensors or set model.allow_pickle = true if you trust it"
    )


def _looks_like_path(text: str) -> bool:
    """True for strings a Hub id can never be: absolute, relative-dotted, home, or nested paths."""
    return text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1


def _is_hub_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True
