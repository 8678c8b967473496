"""A minimal TOML writer for resolved recipes (tables of scalars, lists and sub-tables)."""

from __future__ import annotations

import json
from typing import Any


def toml_value(value: Any) -> str:
    """One TOML value (scalar, array or inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render nested dicts as TOML tables; ``None`` values are left out."""
    scalars = [(k, v) for k, v in data.items() if v is not None and not isinstance(v, dict)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"{_key(k)} = {toml_value(v)}" for k, v in scalars]
    out = "\n".join(lines)
    for key, table in tables:
        name = f"{prefix}{_key(key)}"
        body = dump_toml(table, prefix=f"{name}.")
        header = f"[{name}]"
        out += ("\n\n" if out else "") + header + ("\n" + body if body else "")
    return out
