"""Which model family a base belongs to: ``[model] family = "auto"`` (detected) or a name.

A folder (or a named base) is read from its ``model_index.json``; a Hub id from the
``model_index.json`` in the local Hub cache (downloaded first unless offline); a single
``.safetensors`` file from its tensor names (the header only). A base no registered family
recognises, and a named family that does not match what is there, are one-line errors naming
what was found.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from adaptkit.component import ModelFamily
    from adaptkit.models.source import BaseSource
    from adaptkit.plugins import Registry
    from adaptkit.recipe import ModelSection

AUTO = "auto"


def model_families() -> "Registry":
    """The registered families (built-ins and installed plugins)."""
    from adaptkit.plugins import get_plugin_manager

    return get_plugin_manager().collect().model_families


def component_config_reader(source: "BaseSource", model: "ModelSection") -> "Callable[[str], dict[str, Any]]":
    """``read(name)``: the ``<name>/config.json`` of a folder or (cached) Hub base; ``{}`` if unreadable."""
    cache: dict[str, dict[str, Any]] = {}

    def read(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = _read_json(_file_of(source, model, f"{name}/config.json"))
        return cache[name]

    return read


def _read_json(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(source: "BaseSource", model: "ModelSection") -> tuple[str, dict[str, Any] | None, list[str] | None]:
    """``(what it is, model_index, single-file keys)`` of a base, read without loading weights."""
    if source.kind == "single_file":
        if not source.location.endswith(".safetensors"):
            return "a pickle checkpoint (its keys are not read)", None, None
        from safetensors import safe_open

        with safe_open(source.location, framework="pt") as handle:
            keys = list(handle.keys())
        return "a single-file checkpoint", None, keys
    index_path = _file_of(source, model, "model_index.json")
    if index_path is None:
        return "a Hub model whose model_index.json is not available here", None, None
    try:
        index = json.loads(Path(index_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"model.base: {index_path} is not readable JSON ({exc})") from exc
    return f"a {index.get('_class_name', 'pipeline without _class_name')} folder", index, None


def _file_of(source: "BaseSource", model: "ModelSection", name: str) -> str | None:
    """The local path of file ``name`` of a folder or Hub base (the Hub's through its cache)."""
    if source.kind != "hub":
        return str(Path(source.location) / name)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from adaptkit.data.loading import hub_offline

    try:
        return hf_hub_download(source.location, name, revision=model.revision, local_files_only=hub_offline())
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None


def choose_family(
    source: "BaseSource",
    model: "ModelSection",
    families: "Registry | None" = None,
    described: tuple[str, dict[str, Any] | None, list[str] | None] | None = None,
) -> "ModelFamily":
    """The family of ``model.family`` (checked against the base) or the one that recognises the base;
    ``described`` is :func:`describe`'s answer when the caller already has it."""
    families = families if families is not None else model_families()
    what, index, keys = described if described is not None else describe(source, model)
    config = component_config_reader(source, model)
    matching = [
        entry.cls()
        for _, entry in families
        if (index is not None and entry.cls().recognises(index, config))
        or (keys is not None and entry.cls().recognises_keys(keys))
    ]
    installed = ", ".join(families.names()) or "none"
    if model.family != AUTO:
        if model.family not in families:
            raise UserError(f"model.family: {families.unknown_message(model.family)}")
        chosen = families.get(model.family).cls()
        known = index is not None or keys is not None
        if known and all(f.name != chosen.name for f in matching):
            found = f"detected {', '.join(f.name for f in matching)}" if matching else "no family recognises it"
            raise UserError(f"model.family = {chosen.name!r}: {model.base} is {what} ({found})")
        return with_options(chosen, model)
    if matching:
        return with_options(matching[0], model)
    fallback = [entry.cls() for _, entry in families if entry.cls.fallback]
    if index is None and keys is None and fallback:  # nothing to read (a pickle, an uncached Hub id)
        return with_options(fallback[0], model)
    raise UserError(
        f"model.base: {model.base} is {what}, which no installed model family handles "
        f"(installed: {installed}); install a plugin for it or set model.family"
    )


def with_options(family: "ModelFamily", model: "ModelSection") -> "ModelFamily":
    """``family`` built with the recipe's ``[model.options]``, validated by the family's ``Options``
    (one line per bad key, naming the family)."""
    from pydantic import ValidationError

    from adaptkit.recipe import format_validation_error

    try:
        options = type(family).Options.model_validate(model.options)
    except ValidationError as exc:
        lines = format_validation_error(f"model family {family.name}", exc, type(family).Options, "model.options.")
        raise UserError(*lines) from exc
    return type(family)(options)
