"""The four reference-dataset adapters on local copies written in each Hub dataset's exact schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaptkit.data.loading import build_adapter
from adaptkit.errors import UserError
from adaptkit.testing.datasets import (
    SIMPSONS_COLUMNS,
    write_naruto,
    write_newyorker,
    write_pokemon,
    write_simpsons,
)

from dataset_helpers import _isolated_cache, load  # noqa: F401  (autouse fixture)


def all_examples(dataset):
    return [dataset[i] for i in range(len(dataset))]


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("name", "hub_id"),
    [
        ("pokemon", "svjack/pokemon-blip-captions-en-zh"),
        ("newyorker", "jmhessel/newyorker_caption_contest"),
        ("naruto", "lambdalabs/naruto-blip-captions"),
        ("simpsons", "jinmel/simpsons-blip-captions-pil"),
    ],
)
def test_default_source_is_the_hub_id(name: str, hub_id: str) -> None:
    adapter = build_adapter(name)
    assert adapter.options.source == hub_id
    assert adapter.options.split == "train"
    assert adapter.source_spec().source == hub_id


# --------------------------------------------------------------------------- pokemon


def test_pokemon_english_captions_and_rgb_images(tmp_path: Path) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=6)
    dataset = load("pokemon", source=str(local.path))
    examples = all_examples(dataset)
    assert len(dataset) == 6 and dataset.skipped == 0
    assert [e.captions for e in examples] == [[c] for c in local.text["en_text"]]
    assert {e.image.mode for e in examples} == {"RGB"}
    assert {e.image.size for e in examples} == {(32, 24)}


def test_pokemon_chinese_captions(tmp_path: Path) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=4)
    dataset = load("pokemon", source=str(local.path), language="zh")
    assert [e.captions[0] for e in all_examples(dataset)] == local.text["zh_text"]
    assert dataset[0].captions == ["卡通宝可梦 0 号"]


@pytest.mark.parametrize(("language", "column"), [("en", "text"), ("zh", "text_zh")])
def test_pokemon_falls_back_to_other_column_names(tmp_path: Path, language: str, column: str) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=3, en_column="text", zh_column="text_zh")
    dataset = load("pokemon", source=str(local.path), language=language)
    assert [e.captions[0] for e in all_examples(dataset)] == local.text[column]


def test_pokemon_missing_caption_column_names_dataset_column_and_columns(tmp_path: Path) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=3, en_column="english")
    with pytest.raises(UserError) as error:
        load("pokemon", source=str(local.path))
    message = str(error.value)
    assert "\n" not in message
    assert "dataset 'pokemon'" in message
    assert "no caption column 'en_text', 'text'" in message
    assert "columns: image, english, zh_text" in message


def test_pokemon_rejects_unknown_language() -> None:
    with pytest.raises(UserError, match=r"test.toml: data.options.language: Input should be 'en' or 'zh'"):
        build_adapter("pokemon", {"language": "fr"}, source="test.toml")


# --------------------------------------------------------------------------- newyorker


def test_newyorker_one_example_per_contest(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=4, rows_per_contest=3)
    dataset = load("newyorker", source=str(local.path))
    examples = all_examples(dataset)
    assert local.rows == 12
    assert len(dataset) == 4
    assert [e.key for e in examples] == ["500", "501", "502", "503"]
    assert dataset.merged == 8 and dataset.skipped == 0
    assert examples[1].captions == ["A man at a desk talks to a penguin, cartoon 501."]
    assert [e.meta["rows"] for e in examples] == [3, 3, 3, 3]


def test_newyorker_grayscale_cartoons_of_varied_sizes_become_rgb(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=4, rows_per_contest=2)
    examples = all_examples(load("newyorker", source=str(local.path)))
    sizes = [e.image.size for e in examples]
    assert sizes == [(24 + 8 * (n % 5), 40 - 4 * (n % 4)) for n in range(500, 504)]
    assert len(set(sizes)) == 4
    for example in examples:
        assert example.image.mode == "RGB" and example.meta["original_mode"] == "L"
        pixels = np.asarray(example.image)
        assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def test_newyorker_caption_option_pools_distinct_captions(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=2, rows_per_contest=3)
    dataset = load("newyorker", source=str(local.path), caption="label")
    assert dataset[0].captions == [f"The joke of caption {r} is about cartoon 500." for r in range(3)]
    uncanny = load("newyorker", source=str(local.path), caption="image_uncanny_description")
    assert uncanny[1].captions == ["The penguin wears a tie, cartoon 501."]
    questions = load("newyorker", source=str(local.path), caption="questions")  # a list-of-strings column
    assert questions[0].captions == ["Why is there a penguin in cartoon 500?"]


def test_newyorker_split_option_and_argument(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=3, rows_per_contest=2)
    assert load("newyorker", source=str(local.path), split="validation").keys() == ["503", "504"]
    adapter = build_adapter("newyorker", {"source": str(local.path)})
    assert adapter.load("validation").keys() == ["503", "504"]
    assert adapter.load("train").keys() == ["500", "501", "502"]


def test_newyorker_missing_config_folder_is_a_clear_error(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=2, rows_per_contest=1)
    with pytest.raises(UserError) as error:
        load("newyorker", source=str(local.path), config="ranking")
    message = str(error.value)
    assert "dataset 'newyorker'" in message and "config 'ranking' not found" in message
    assert "folders: explanation" in message


def test_newyorker_missing_caption_column_lists_columns(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=2, rows_per_contest=1)
    with pytest.raises(UserError) as error:
        load("newyorker", source=str(local.path), caption="image_caption")
    message = str(error.value)
    assert "dataset 'newyorker'" in message and "no caption column 'image_caption'" in message
    assert "(set [data.options] caption)" in message
    assert "columns: image, contest_number, image_location, image_description, image_uncanny_description" in message


def test_newyorker_non_text_caption_column_is_refused(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "newyorker", contests=2, rows_per_contest=1)
    with pytest.raises(UserError, match=r"caption column 'n_tokens_label' does not hold text .*caption columns: "):
        load("newyorker", source=str(local.path), caption="n_tokens_label")


# --------------------------------------------------------------------------- naruto


def test_naruto_captions_and_images(tmp_path: Path) -> None:
    local = write_naruto(tmp_path / "naruto", rows=5)
    dataset = load("naruto", source=str(local.path))
    examples = all_examples(dataset)
    assert [e.captions[0] for e in examples] == local.text["text"]
    assert all(e.image.mode == "RGB" and e.image.size == (32, 24) for e in examples)
    assert len({e.key for e in examples}) == 5


def test_naruto_missing_text_column(tmp_path: Path) -> None:
    local = write_simpsons(tmp_path / "other", rows=2, caption_column="caption")
    with pytest.raises(UserError, match=r"dataset 'naruto' .*no caption column 'text'; columns: image, caption$"):
        load("naruto", source=str(local.path))


# --------------------------------------------------------------------------- simpsons


@pytest.mark.parametrize("variant", sorted(SIMPSONS_COLUMNS))
def test_simpsons_each_hub_copy(tmp_path: Path, variant: str) -> None:
    local = write_simpsons(tmp_path / "simpsons", rows=4, variant=variant)
    dataset = load("simpsons", source=str(local.path))
    caption_column = SIMPSONS_COLUMNS[variant][1]
    assert [e.captions[0] for e in all_examples(dataset)] == local.text[caption_column]


@pytest.mark.parametrize("column", ["caption", "captions", "blip_caption"])
def test_simpsons_detects_other_caption_columns(tmp_path: Path, column: str) -> None:
    local = write_simpsons(tmp_path / "simpsons", rows=3, caption_column=column)
    dataset = load("simpsons", source=str(local.path))
    assert dataset[2].captions == ["a yellow cartoon family on a couch, scene 2"]


def test_simpsons_without_a_caption_column(tmp_path: Path) -> None:
    local = write_simpsons(tmp_path / "simpsons", rows=2, caption_column="blurb")
    with pytest.raises(UserError) as error:
        load("simpsons", source=str(local.path))
    message = str(error.value)
    assert "dataset 'simpsons'" in message and "'text', 'caption'" in message and "columns: image, blurb" in message
