"""Dataset adapters from outside the package: recipe modules, --module, entry points, clashes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

from adaptkit.cli import main
from adaptkit.cli.data import resolve_dataset
from adaptkit.errors import PluginError
from adaptkit.plugins import get_plugin_manager
from adaptkit.recipe import load_recipe
from adaptkit.testing.datasets import encode, image_cell, isolated_datasets, pattern_image, write_parquet

BUILTIN_DATASETS = {"newyorker", "pokemon", "naruto", "simpsons", "hub", "imagefolder"}

SKETCH_PLUGIN = '''
"""A third-party plugin: one adapter over a dataset with its own column names."""
import adaptkit
from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap


class SketchAdapter(SourceAdapter):
    name = "{name}"
    description = "Pencil sketches with notes."

    class Options(SourceOptions):
        source: str = source_field()

    def columns(self, features, spec):
        return ColumnMap(image="picture", caption="note")


@adaptkit.hookimpl
def register_datasets(register):
    register(SketchAdapter)
'''


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path) -> Iterator[None]:
    with isolated_datasets(tmp_path / "hf-cache"):
        yield


def write_plugin(folder: Path, module: str, name: str = "sketches") -> Path:
    path = folder / f"{module}.py"
    path.write_text(SKETCH_PLUGIN.format(name=name), encoding="utf-8")
    return path


def write_sketches(folder: Path, rows: int = 3) -> Path:
    path = folder / "sketches.parquet"
    columns = {
        "picture": [image_cell(encode(pattern_image(i))) for i in range(rows)],
        "note": [f"sketch {i}" for i in range(rows)],
    }
    return write_parquet(path, columns, {"picture": datasets.Image(), "note": datasets.Value("string")})


def write_recipe(folder: Path, module: str, data: Path) -> Path:
    recipe = folder / "recipe.toml"
    recipe.write_text(
        f'[data]\nadapter = "sketches"\n[data.options]\nsource = "{data}"\n'
        f'[method]\nname = "lora"\n[plugins]\nmodules = ["{module}"]\n',
        encoding="utf-8",
    )
    return recipe


def plugins_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, str]]:
    capsys.readouterr()
    assert main(["plugins", "--json", *args]) == 0
    return [row for row in json.loads(capsys.readouterr().out) if row["kind"] == "dataset"]


def test_builtin_adapters_are_listed_with_their_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    rows = {row["name"]: row for row in plugins_json(capsys)}
    assert BUILTIN_DATASETS <= set(rows)
    for name in BUILTIN_DATASETS:
        assert rows[name]["plugin"] == "adaptkit.builtins.datasets"
        assert rows[name]["distribution"] == "adaptkit"
        assert rows[name]["description"]


def test_recipe_listed_plugin_file_is_registered_and_usable(tmp_path: Path) -> None:
    write_plugin(tmp_path, "my_plugin")
    recipe_path = write_recipe(tmp_path, "my_plugin.py", write_sketches(tmp_path))
    adapter = resolve_dataset(load_recipe(recipe_path), recipe_path)
    dataset = adapter.load()
    assert [dataset[i].captions for i in range(len(dataset))] == [["sketch 0"], ["sketch 1"], ["sketch 2"]]
    assert dataset[0].image.mode == "RGB"

    registry = get_plugin_manager(["my_plugin.py"], base_dir=tmp_path).collect().datasets
    assert registry.get("sketches").plugin == "adaptkit_local_plugin_my_plugin"
    assert BUILTIN_DATASETS <= set(registry.names())


def test_recipe_listed_dotted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "dotted_sketch_plugin")
    monkeypatch.delitem(sys.modules, "dotted_sketch_plugin", raising=False)
    recipe_path = write_recipe(tmp_path, "dotted_sketch_plugin", write_sketches(tmp_path, rows=2))
    dataset = resolve_dataset(load_recipe(recipe_path), recipe_path).load()
    assert len(dataset) == 2 and dataset[1].captions == ["sketch 1"]
    monkeypatch.delitem(sys.modules, "dotted_sketch_plugin", raising=False)


def test_plugins_command_lists_a_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = write_plugin(tmp_path, "listed_plugin")
    rows = {row["name"]: row for row in plugins_json(capsys, "--module", str(plugin))}
    assert rows["sketches"]["plugin"] == "adaptkit_local_plugin_listed_plugin"
    assert rows["sketches"]["description"] == "Pencil sketches with notes."


def test_a_second_plugin_with_an_existing_name_is_an_error_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = write_plugin(tmp_path, "clashing_plugin", name="pokemon")
    with pytest.raises(PluginError) as error:
        get_plugin_manager([str(plugin)]).collect()
    message = str(error.value)
    assert "dataset 'pokemon' is registered twice" in message
    assert "by plugin adaptkit.builtins.datasets" in message
    assert "by plugin adaptkit_local_plugin_clashing_plugin" in message
    capsys.readouterr()
    assert main(["plugins", "--module", str(plugin)]) == 2
    assert "registered twice" in capsys.readouterr().err


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution 'sketchdist' on sys.path whose 'adaptkit' entry point registers 'installed-sketches'."""
    site = tmp_path / "site"
    site.mkdir()
    write_plugin(site, "sketchdist_plugin", name="installed-sketches")
    info = site / "sketchdist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sketchdist\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[adaptkit]\nsketches = sketchdist_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("sketchdist_plugin", None)


@pytest.mark.parametrize(
    ("allow", "loaded"),
    [(None, True), ("sketchdist", True), ("sketches", True), ("someone-else", False), ("", False)],
)
def test_entry_points_follow_the_allowlist(
    installed_plugin: None, monkeypatch: pytest.MonkeyPatch, allow: str | None, loaded: bool
) -> None:
    if allow is None:
        monkeypatch.delenv("ADAPTKIT_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("ADAPTKIT_LOAD_PLUGINS", allow)
    registry = get_plugin_manager().collect().datasets
    assert ("installed-sketches" in registry) is loaded
    assert BUILTIN_DATASETS <= set(registry.names())  # the allowlist never hides the built-ins
    if loaded:
        entry = registry.get("installed-sketches")
        assert (entry.plugin, entry.distribution) == ("sketches", "sketchdist")


def test_installed_plugin_is_usable_from_a_recipe(installed_plugin: None, tmp_path: Path) -> None:
    data = write_sketches(tmp_path, rows=2)
    recipe = tmp_path / "installed.toml"
    recipe.write_text(
        f'[data]\nadapter = "installed-sketches"\n[data.options]\nsource = "{data}"\n[method]\nname = "lora"\n',
        encoding="utf-8",
    )
    dataset = resolve_dataset(load_recipe(recipe), recipe).load()
    assert [dataset[i].captions[0] for i in range(2)] == ["sketch 0", "sketch 1"]
