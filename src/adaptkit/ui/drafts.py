"""Recipes edited in the UI: where they come from, where they are kept, and their validation.

A draft is TOML text and a run name. It is checked by the CLI's own loader
(:func:`adaptkit.resolve.load_and_resolve`, what ``adaptkit validate`` calls), so the UI shows the same
one-line errors and refuses what the CLI refuses (an unknown key, a component's bad option, a plugin
module that does not import). The run name and the runs folder are set the way a user would on the
command line, ``--set run.name=… --set run.output_dir=…``; a launched draft is saved as
``<runs>/.adaptkit-ui/recipes/<name>.toml`` (relative ``.py`` plugin paths are read from there).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import UserError
from adaptkit.recipe.shipped import shipped_recipes
from adaptkit.run import RunDir

#: The UI's own folder inside the runs folder (hidden: never listed as a run, never served as a file).
UI_DIR = ".adaptkit-ui"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def ui_dir(runs_dir: Path, *parts: str) -> Path:
    """``<runs>/.adaptkit-ui/<parts>``, created."""
    path = runs_dir.joinpath(UI_DIR, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_run_name(name: str) -> str:
    """``name`` when it is a plain folder name (letters, digits, ``.``, ``_``, ``-``), else one line."""
    if not RUN_NAME.match(name or "") or name.startswith("."):
        raise UserError(f"run name {name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
    return name


def run_overrides(runs_dir: Path, name: str) -> list[str]:
    """The ``--set`` overrides that put run ``name`` into ``runs_dir`` (TOML strings: JSON's escapes are TOML's)."""
    return [f"run.name={json.dumps(name)}", f"run.output_dir={json.dumps(str(runs_dir.resolve()))}"]


def recipe_text(runs_dir: Path, source: str) -> str:
    """The TOML of ``shipped:NAME`` (a shipped recipe) or ``run:NAME`` (a run's saved ``recipe.toml``)."""
    kind, _, name = source.partition(":")
    if kind == "shipped":
        for recipe in shipped_recipes():
            if recipe.name == name:
                return recipe.path.read_text(encoding="utf-8")
        raise UserError(f"{name!r}: no shipped recipe of that name (adaptkit recipes lists them)")
    if kind == "run":
        path = RunDir(runs_dir / check_run_name(name)).recipe
        if path.is_file():
            return path.read_text(encoding="utf-8")
        raise UserError(f"{name!r}: no run of that name in {runs_dir}")
    raise UserError(f"{source!r}: give shipped:NAME or run:NAME")


@dataclass
class Validation:
    """The outcome of checking a draft: ``errors`` holds the CLI's one-line errors (none when valid)."""

    name: str
    errors: list[str] = field(default_factory=list)
    run_dir: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "name": self.name, "errors": self.errors, "run_dir": self.run_dir}


def _check_file(path: Path, runs_dir: Path, name: str, shown: str) -> Validation:
    from adaptkit.resolve import load_and_resolve

    try:
        resolved = load_and_resolve(path, run_overrides(runs_dir, name))
    except UserError as exc:
        return Validation(name, [line.replace(str(path), shown) for line in exc.lines])
    return Validation(name, run_dir=str(resolved.run_dir))


def validate_draft(runs_dir: Path, name: str, text: str) -> Validation:
    """Check ``text`` as the recipe of run ``name`` without keeping it (errors name it ``<name>.toml``)."""
    try:
        check_run_name(name)
    except UserError as exc:
        return Validation(name, exc.lines)
    folder = ui_dir(runs_dir, "recipes")
    handle, temp = tempfile.mkstemp(prefix=".check-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        return _check_file(Path(temp), runs_dir, name, f"{name}.toml")
    finally:
        os.unlink(temp)


def save_draft(runs_dir: Path, name: str, text: str) -> Path:
    """Keep ``text`` as ``<runs>/.adaptkit-ui/recipes/<name>.toml`` (the file a launched run is given)."""
    path = ui_dir(runs_dir, "recipes") / f"{check_run_name(name)}.toml"
    path.write_text(text, encoding="utf-8")
    return path
