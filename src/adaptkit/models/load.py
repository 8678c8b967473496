"""Loading the base model: every source goes through diffusers' own pipeline loaders.

The base's model family (:mod:`adaptkit.models.family`) names the diffusers pipeline class:
folders, Hub ids and named bases load with its ``from_pretrained``, single-file checkpoints with
its ``from_single_file``. The safety checker
is off; weights load from safetensors only unless ``model.allow_pickle`` is set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.data.loading import hub_offline
from adaptkit.errors import UserError, first_line
from adaptkit.models.components import SDComponents
from adaptkit.models.source import BaseSource, resolve_base

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from adaptkit.recipe import ModelSection

logger = logging.getLogger("adaptkit.models")

#: Keyword arguments every load of a pipeline with a safety checker uses: none, no feature extractor.
_NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _no_safety(loader: Any) -> dict[str, Any]:
    """:data:`_NO_SAFETY` for a pipeline class that has a safety checker; nothing for one without."""
    import inspect

    return _NO_SAFETY if "safety_checker" in inspect.signature(loader.__init__).parameters else {}


def load_base_model(
    model: "ModelSection", *, dtype: torch.dtype = torch.float32, config: str | Path | None = None
) -> SDComponents:
    """Load the base model a recipe's ``[model]`` section names, weights in ``dtype``.

    ``config`` (default: the recipe's ``model.config``) only matters for a single-file checkpoint:
    a diffusers folder (or Hub id) giving the architecture, tokenizer and scheduler; without it
    diffusers infers a Hub repository from the checkpoint's keys, which needs the Hub or its cache.
    Raises :class:`~adaptkit.errors.UserError` (one line) for every user mistake.
    """
    from adaptkit.models.family import choose_family, describe

    source = resolve_base(model)
    described = describe(source, model)  # read once: choosing the family and loading both need it
    family = choose_family(source, model, described=described)
    if config is None:
        config = model.config
    loader = family.pipeline_class()
    from adaptkit.models.quantize import quantization_options

    model_index = described[1]
    quantized = quantization_options(model, model_index, torch.bfloat16 if dtype == torch.float32 else dtype)
    replaced = {"vae": _load_vae(model.vae, dtype)} if model.vae else {}
    replaced.update(family.load_options(model, model_index))
    if source.kind == "single_file":
        pipeline = _from_single_file(loader, source, model, dtype, config, replaced)
    else:
        pipeline = _from_pretrained(loader, source, model, dtype, {**replaced, **quantized})
    pipeline.set_progress_bar_config(disable=True)
    return SDComponents.from_pipeline(pipeline, model.base, family, kind=source.kind, location=source.location)


def _load_vae(location: str, dtype: torch.dtype) -> Any:
    """``model.vae``: an ``AutoencoderKL`` from a local diffusers folder or a Hub id (safetensors only)."""
    from diffusers import AutoencoderKL

    local = Path(location).expanduser()
    where = str(local) if local.exists() else location
    try:
        return AutoencoderKL.from_pretrained(
            where, dtype=dtype, use_safetensors=True, local_files_only=local.exists() or hub_offline()
        )
    except (OSError, ValueError) as exc:
        raise UserError(
            f"model.vae: cannot load {location!r} as a diffusers AutoencoderKL (a folder with config.json and "
            f"diffusion_pytorch_model.safetensors, or a Hub id in the local cache): {first_line(exc)}"
        ) from exc


def _from_pretrained(
    loader: Any, source: BaseSource, model: "ModelSection", dtype: torch.dtype, replaced: dict[str, Any]
) -> "DiffusionPipeline":
    kwargs: dict[str, Any] = {
        **replaced,
        **_no_safety(loader),
        "dtype": dtype,
        "variant": model.variant,
        "use_safetensors": None if model.allow_pickle else True,
    }
    if source.kind == "hub":
        kwargs.update(revision=model.revision, local_files_only=hub_offline())
    if model.trust_remote_code:
        logger.warning(
            "model.trust_remote_code = true: code shipped with %s may run while it loads; use only a source you trust",
            source.location,
        )
        kwargs["trust_remote_code"] = True
    try:
        return loader.from_pretrained(source.location, **kwargs)
    except OSError as exc:
        if source.kind == "hub":
            raise UserError(_hub_message(source.location, exc, model.allow_pickle)) from exc
        raise UserError(f"model.base: cannot load {source.location}: {first_line(exc)}") from exc


def _from_single_file(
    loader: Any,
    source: BaseSource,
    model: "ModelSection",
    dtype: torch.dtype,
    config: str | Path | None,
    replaced: dict[str, Any],
) -> "DiffusionPipeline":
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    kwargs: dict[str, Any] = {**replaced, **_no_safety(loader), "dtype": dtype, "local_files_only": hub_offline()}
    if config is not None:
        kwargs["config"] = str(config)
    try:
        return loader.from_single_file(source.location, **kwargs)
    except (OSError, SingleFileComponentError, ValueError, KeyError, RuntimeError) as exc:
        hint = "" if config is not None else " (without a config folder, diffusers needs the Hub or its cache)"
        raise UserError(
            f"model.base: cannot load single-file checkpoint {source.location}{hint}: {first_line(exc)}"
        ) from exc


def _hub_message(repo_id: str, exc: OSError, allow_pickle: bool) -> str:
    """One line: why a Hub id did not load, and how to provide a local copy."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    if "safetensors" in str(exc) and not allow_pickle and not isinstance(exc, LocalEntryNotFoundError):
        return (
            f"model.base: Hub model {repo_id!r} has no safetensors weights; "
            "set model.allow_pickle = true to load its pickle weights if you trust it"
        )
    return (
        f"model.base: cannot load Hub model {repo_id!r}: it is not in the local Hugging Face cache and the Hub "
        f"is unreachable or has no such model ({type(exc).__name__}); download it where the Hub is reachable "
        f'(hf download {repo_id} --local-dir DIR) and set model.base = "DIR"'
    )
