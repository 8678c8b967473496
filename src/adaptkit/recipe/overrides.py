"""``--set KEY.PATH=VALUE`` overrides: parsing, applying them to a recipe's table, and
remembering which key each one wrote, so that an error names the ``--set`` that caused it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.steps=10`` -> (["train", "steps"], 10). Values are TOML; bare words are strings."""
    if "=" not in text:
        raise UserError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set train.steps=10")
    key, raw = text.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if not all(path):
        raise UserError(f"--set {text}: empty key in {key!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {text}: {'.'.join(path[: depth + 1])} is not a table")
            node = child
        node[path[-1]] = value
    return data


class RecipeSource(str):
    """A recipe file's name that remembers the ``--set`` overrides applied on top of the file,
    so that an error in an overridden value names the override, not the file."""

    overrides: tuple[str, ...]

    def __new__(cls, path: str | Path, overrides: Sequence[str] = ()) -> "RecipeSource":
        source = super().__new__(cls, str(path))
        source.overrides = tuple(overrides)
        return source

    def of(self, key: str, unknown: bool = False) -> str:
        """Where the value of ``key`` (``train.steps``) came from: the last ``--set`` that wrote it
        or a table above it, else the file. With ``unknown`` (``key`` is not a valid key), a ``--set``
        that wrote below ``key`` created it too (``--set trian.steps=1`` made the unknown ``trian``)."""
        for text in reversed(self.overrides):
            written = ".".join(parse_override(text)[0])
            if key == written or key.startswith(written + ".") or (unknown and written.startswith(key + ".")):
                return f"--set {text}"
        return str(self)


def source_of(source: str, key: str, unknown: bool = False) -> str:
    """The label an error about ``key`` starts with (see :class:`RecipeSource`)."""
    return source.of(key, unknown) if isinstance(source, RecipeSource) else source
