"""``adaptkit data preview``: a table of the first rows and a contact sheet, or one clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from adaptkit.cli import main
from adaptkit.testing.datasets import isolated_datasets, write_pokemon


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path) -> Iterator[None]:
    with isolated_datasets(tmp_path / "hf-cache"):
        yield


def write_recipe(tmp_path: Path, source: Path | str, extra: str = "") -> Path:
    recipe = tmp_path / "preview.toml"
    recipe.write_text(
        f'[data]\nadapter = "pokemon"\nresolution = 16\n{extra}\n'
        f'[data.options]\nsource = "{source}"\n\n[method]\nname = "lora"\n',
        encoding="utf-8",
    )
    return recipe


def test_preview_lists_captions_and_writes_a_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=5)
    out = tmp_path / "sheets" / "sheet.png"
    code = main(["data", "preview", str(write_recipe(tmp_path, local.path)), "--out", str(out), "--thumb", "32"])
    printed = capsys.readouterr().out
    assert code == 0
    for caption in local.text["en_text"]:
        assert caption in printed
    assert "32×24" in printed and "RGB" in printed
    assert f"written to {out}" in printed
    with Image.open(out) as sheet:  # 5 images: 3 columns × 2 rows of 32 px, 4 px apart
        assert sheet.format == "PNG" and sheet.size == (3 * 32 + 4 * 4, 2 * 32 + 3 * 4)


def test_preview_rows_set_and_default_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=5)
    recipe = write_recipe(tmp_path, local.path)
    monkeypatch.chdir(tmp_path)
    code = main(["data", "preview", str(recipe), "--rows", "2", "--thumb", "20", "--set", "data.options.language=zh"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "卡通宝可梦 1 号" in printed
    assert "卡通宝可梦 2 号" not in printed and "pokemon number" not in printed
    with Image.open(tmp_path / "preview-data-preview.png") as sheet:
        assert sheet.size == (2 * 20 + 3 * 4, 20 + 2 * 4)


@pytest.mark.parametrize(
    ("extra", "source", "expected"),
    [
        ("", None, "data.options.langauge: unknown key (valid: source, split, eval_fraction, language)"),
        ('random_flip = "sometimes"', None, "data.random_flip: Input should be a valid boolean"),
        ("", "./missing-copy", "dataset 'pokemon' (./missing-copy): no such file or folder './missing-copy'"),
    ],
)
def test_bad_recipe_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, source: str | None, expected: str
) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=2)
    recipe = write_recipe(tmp_path, source or local.path, extra)
    overrides = ["--set", "data.options.langauge=en"] if "langauge" in expected else []
    capsys.readouterr()
    code = main(["data", "preview", str(recipe), *overrides, "--out", str(tmp_path / "x.png")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2
    assert len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "x.png").exists()


def test_data_without_a_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 2
    assert "preview" in capsys.readouterr().out


def test_unknown_adapter_names_the_registered_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\nadapter = "pokemno"\n[method]\nname = "lora"\n', encoding="utf-8")
    assert main(["data", "preview", str(recipe)]) == 2
    error = capsys.readouterr().err
    registered = "(registered: embedded-styles, hub, imagefolder, naruto, newyorker, pokemon, shards, simpsons"
    assert f"data.adapter: unknown dataset 'pokemno' {registered}" in error
