"""What a recipe's ``[model] base`` names, checked before anything heavy is loaded.

``base`` is one of: a Hub id (``CompVis/stable-diffusion-v1-4``), a local diffusers folder,
a single-file checkpoint (``.safetensors``; pickle formats only with ``allow_pickle``), or
``embedded:<name>``, a diffusers folder shipped inside the package (``adaptkit/embedded/<name>/``),
or ``testing:tiny-sd`` / ``testing:sd15-random`` (the tiny test model; the SD v1.5 architecture with
random weights, for ``adaptkit bench``), built in code on first use and cached
(``$ADAPTKIT_CACHE``, default ``~/.cache/adaptkit``) so it loads through ``from_pretrained`` too.
Every mistake is a one-line :class:`~adaptkit.errors.UserError` naming ``model.base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.recipe import ModelSection

SourceKind = Literal["hub", "folder", "single_file", "embedded", "testing"]

EMBEDDED_PREFIX = "embedded:"
TESTING_PREFIX = "testing:"
TESTING_MODELS = ("tiny-sd", "sd15-random")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
SINGLE_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
#: Pipeline parts a Stable Diffusion v1 folder must have; the first three hold weights.
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED_COMPONENTS = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class BaseSource:
    """Where the base model comes from: ``kind`` and ``location`` (a Hub id or an absolute path)."""

    kind: SourceKind
    location: str
    given: str

    @property
    def is_local(self) -> bool:
        """True for anything on disk (folder, single file, embedded)."""
        return self.kind != "hub"


def embedded_root() -> Path:
    """The folder holding the package's embedded models (``adaptkit/embedded``)."""
    return Path(__file__).resolve().parent.parent / "embedded"


def available_embedded_models() -> list[str]:
    """Names usable as ``embedded:<name>``: sub-folders of :func:`embedded_root` with a ``model_index.json``."""
    root = embedded_root()
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if (child / "model_index.json").is_file())


def resolve_base(model: "ModelSection") -> BaseSource:
    """Decide what ``model.base`` names and check local sources; raise a one-line UserError on mistakes."""
    base = model.base.strip()
    if base.startswith(EMBEDDED_PREFIX):
        return _embedded(base)
    if base.startswith(TESTING_PREFIX):
        return _testing(base)
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
            f"model.base: {base!r} is not a Hub id (owner/name), an existing folder or file, or embedded:<name>"
        )
    return BaseSource("hub", base, base)


def check_pipeline_folder(folder: Path, allow_pickle: bool) -> None:
    """Check that ``folder`` is a diffusers SD pipeline with weights in an allowed format."""
    if not (folder / "model_index.json").is_file():
        raise UserError(f"model.base: {folder} is not a diffusers pipeline folder (no model_index.json)")
    for name in REQUIRED_COMPONENTS:
        if not (folder / name).is_dir():
            raise UserError(f"model.base: {folder} is missing the '{name}' component (no {name}/ folder)")
    for name in WEIGHTED_COMPONENTS:
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


def _embedded(base: str) -> BaseSource:
    name = base[len(EMBEDDED_PREFIX) :]
    folder = embedded_root() / name
    if not name or not (folder / "model_index.json").is_file():
        available = available_embedded_models()
        listed = ", ".join(f"embedded:{n}" for n in available) if available else "none in this installation"
        raise UserError(f"model.base: no embedded model {name!r} (available: {listed})")
    return BaseSource("embedded", str(folder), base)


def cache_root() -> Path:
    """adaptkit's cache folder: ``$ADAPTKIT_CACHE`` or ``~/.cache/adaptkit``."""
    import os

    return Path(os.environ.get("ADAPTKIT_CACHE") or Path.home() / ".cache" / "adaptkit")


def _testing(base: str) -> BaseSource:
    name = base[len(TESTING_PREFIX) :]
    if name not in TESTING_MODELS:
        listed = ", ".join(f"{TESTING_PREFIX}{n}" for n in TESTING_MODELS)
        raise UserError(f"model.base: no testing model {name!r} (available: {listed})")
    import os
    import shutil

    from adaptkit.bench.sd15 import save_sd15_random_pipeline
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    folder = cache_root() / "testing" / name
    if not (folder / "model_index.json").is_file():
        tmp = folder.with_name(f".{name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        (save_sd15_random_pipeline if name == "sd15-random" else save_tiny_pipeline)(tmp, seed=0)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return BaseSource("testing", str(folder), base)


def _single_file(base: str, path: Path, allow_pickle: bool) -> BaseSource:
    if not path.is_file():
        raise UserError(f"model.base: no such checkpoint file: {path}")
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UserError(_pickle_refusal(path))
    return BaseSource("single_file", str(path.resolve()), base)


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
