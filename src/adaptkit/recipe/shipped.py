"""The recipes that ship inside the package (``adaptkit/recipe/shipped/*.toml``; ``recipes/`` in a checkout).

``adaptkit run demo`` finds ``demo.toml`` here when no file ``demo`` exists, so a non-editable install
runs the shipped recipes from any folder; ``adaptkit recipes`` lists them. Sweep space files
(``*-space.toml``, see :mod:`adaptkit.sweep.space`) ship beside the recipes they search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptkit.errors import UserError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: The name ending of a sweep space file (``demo-space.toml`` searches ``demo.toml``).
SPACE_SUFFIX = "-space"


@dataclass(frozen=True)
class ShippedRecipe:
    """One shipped recipe: its name (the file name without ``.toml``), path and the summary its header gives."""

    name: str
    path: Path
    summary: str


def shipped_recipes() -> list[ShippedRecipe]:
    """Every shipped recipe, by name; the summary is its header comment after the command line, to the first stop."""
    found = []
    for path in sorted(SHIPPED_DIR.glob("*.toml")):
        if path.stem.endswith(SPACE_SUFFIX):
            continue
        header = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            header.append(line[1:].strip())
        text = " ".join(header[1:])
        summary = text.split(". ")[0].split(": ")[0].rstrip(".")
        found.append(ShippedRecipe(path.stem, path, summary))
    return found


def locate_recipe(given: str | Path) -> Path:
    """``given`` when it is a file; else the shipped recipe of that name (``demo`` or ``demo.toml``)."""
    path = Path(given)
    if path.is_file():
        return path
    name = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    by_name = {recipe.name: recipe.path for recipe in shipped_recipes()}
    if path.parent == Path(".") and name in by_name:
        return by_name[name]
    if path.exists():
        raise UserError(f"{given}: not a recipe file (a folder?); give a .toml file or a shipped recipe's name")
    raise UserError(f"{given}: no such recipe file, nor a shipped recipe of that name (shipped: {', '.join(by_name)})")


def locate_space(given: str | Path) -> Path:
    """``given`` when it is a file; else the shipped space file of that name (``demo-space``); else ``given``
    (whose loading then says it does not exist)."""
    path = Path(given)
    shipped = SHIPPED_DIR / f"{path.stem}.toml"
    if path.is_file() or path.parent != Path(".") or not path.stem.endswith(SPACE_SUFFIX) or not shipped.is_file():
        return path
    return shipped
