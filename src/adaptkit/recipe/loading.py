"""TOML recipes -> a typed, validated :class:`~adaptkit.recipe.schema.Recipe`.

Every error is collected and reported one per line, e.g.::

    recipe.toml: train.stepz: unknown key (valid: steps, batch_size, ...)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from adaptkit.errors import IOFailure, UserError
from adaptkit.recipe.overrides import RecipeSource, apply_overrides, source_of
from adaptkit.recipe.schema import UNKNOWN_KEY, UNLISTED_METRIC, Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --------------------------------------------------------------------------- errors

#: Location parts pydantic adds for a union's members (``data.cache_latents.bool``); not recipe keys.
_TYPE_TAGS = frozenset({"bool", "int", "float", "str", "bytes", "none", "list", "dict", "tuple", "set"})


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Section``, ``Section | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The valid keys of the model at ``loc`` (for 'unknown key' messages)."""
    current: type[BaseModel] | None = model
    for part in loc:
        field = current.model_fields.get(str(part)) if current is not None else None
        if field is None:
            return None
        current = _model_in(field.annotation)
    return list(current.model_fields) if current is not None else None


def _recipe_loc(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` as recipe keys: the parts pydantic adds for a union's members are dropped."""
    kept: list[Any] = []
    current: type[BaseModel] | None = model
    for part in loc:
        if current is not None and str(part) in current.model_fields:
            kept.append(part)
            current = _model_in(current.model_fields[str(part)].annotation)
        elif current is None and isinstance(part, str) and (part in _TYPE_TAGS or "[" in part):
            continue
        else:
            kept.append(part)
            current = None
    return tuple(kept)


def format_validation_error(source: str, exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per key: ``source: key.path: message`` (``source`` is the ``--set`` that wrote the
    key when ``source`` is a :class:`RecipeSource` that knows one).

    Messages speak of recipe tables (``[train]``), never of the schema's class names, and the
    failures of one value against each member of a union become one line."""
    found: dict[str, tuple[str, str, str]] = {}  # full key -> (source, message, shown input)
    for error in exc.errors():
        loc = _recipe_loc(model, tuple(error["loc"]))
        ctx = error.get("ctx") or {}
        if error["type"] in (UNKNOWN_KEY, UNLISTED_METRIC):
            loc = (*loc, ctx["key"])
        key = ".".join(str(p) for p in loc)
        full_key = f"{prefix}{key}" if key else prefix.rstrip(".") or "(top level)"
        shown = ""
        if error["type"] in ("extra_forbidden", UNKNOWN_KEY):
            valid = _fields_at(model, loc[:-1]) if error["type"] == "extra_forbidden" else None
            hint = f" (valid: {', '.join(valid)})" if valid else ""
            message = f"unknown key{hint}" if error["type"] == "extra_forbidden" else error["msg"]
            where = source_of(source, full_key, unknown=True)
        elif error["type"] == "missing":
            message, where = "required key is missing", source_of(source, full_key)
        else:
            message = error["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if error["type"] == "model_type":  # "... or instance of TrainSection"
                message = f"must be a table ([{full_key}])"
            given = error.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            where = source_of(source, full_key, unknown=error["type"] == UNLISTED_METRIC)
        if full_key in found:  # another member of a union: one line per key
            old_where, old_message, old_shown = found[full_key]
            message = f"{old_message}; or {message.removeprefix('Input should be ')}"
            where, shown = old_where, old_shown or shown
        found[full_key] = (where, message, shown)
    return [f"{where}: {key}: {message}{shown}" for key, (where, message, shown) in found.items()]


# --------------------------------------------------------------------------- loading


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in ``path`` (a UTF-8 file; a byte-order mark at its start is allowed).

    A missing file, a folder, undecodable text or invalid TOML is a one-line :class:`UserError`;
    a file the system will not read (permission denied) is an :class:`IOFailure` (exit status 74)."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a recipe file (give a .toml file)")
    if not path.is_file():
        raise UserError(f"{path}: no such recipe file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise IOFailure(f"{path}: cannot read the recipe ({exc.strerror or exc})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from exc


def parse_recipe(data: dict[str, Any], source: str) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise UserError.collect(format_validation_error(source, exc, Recipe)) from exc


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe file (component options are checked by :func:`resolve`)."""
    path = Path(path)
    data = apply_overrides(read_toml(path), list(overrides or []))
    return parse_recipe(data, RecipeSource(path, overrides or ()))
