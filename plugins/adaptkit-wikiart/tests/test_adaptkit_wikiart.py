"""adaptkit-wikiart: adaptkit's dataset contract, then filters and captions on a local copy in the Hub schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adaptkit import UserError
from adaptkit.testing.contracts import DatasetAdapterContract, build
from adaptkit.testing.datasets import encode, image_cell, isolated_datasets, pattern_image, write_parquet

from adaptkit_wikiart import WikiArtAdapter
from adaptkit_wikiart.testing import ROWS, write_wikiart


class TestWikiArtContract(DatasetAdapterContract):
    component = WikiArtAdapter
    min_rows = len(ROWS)
    bad_options = [
        ({"caption": "a painting by {painter}"}, "data.options.caption: unknown field {painter}"),
        ({"artists": "claude-monet"}, "data.options.artists"),
    ]

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(write_wikiart(tmp_path / "wikiart"))}


@pytest.fixture
def source(tmp_path: Path) -> Iterator[str]:
    with isolated_datasets(tmp_path / "hf-cache"):
        yield str(write_wikiart(tmp_path / "wikiart"))


def captions(**options: Any) -> list[str]:
    dataset = build(WikiArtAdapter, options, "data.adapter").load()
    return [dataset[i].captions[0] for i in range(len(dataset))]


def test_captions_are_written_from_readable_label_names(source: str) -> None:
    assert captions(source=source) == [
        "a landscape painting by claude monet, impressionism",
        "a portrait painting by claude monet, impressionism",
        "a landscape painting by vincent van gogh, post impressionism",
        "a portrait painting by vincent van gogh, post impressionism",
        "a landscape painting by katsushika hokusai, ukiyo e",
        "a unknown genre painting by unknown artist, impressionism",
    ]


def test_caption_template(source: str) -> None:
    assert captions(source=source, artists=["katsushika-hokusai"], caption="{style} print, {artist}") == [
        "ukiyo e print, katsushika hokusai"
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"artists": ["Vincent Van Gogh"]}, [2, 3]),  # names compare without case, spaces, - or _
        ({"styles": ["impressionism"]}, [0, 1, 5]),
        ({"styles": ["post-impressionism", "ukiyo_e"]}, [2, 3, 4]),
        ({"artists": ["claude-monet", "vincent-van-gogh"], "genres": ["portrait"]}, [1, 3]),
    ],
)
def test_filters_keep_the_matching_rows(source: str, options: dict[str, Any], expected: list[int]) -> None:
    everything = captions(source=source)
    assert captions(source=source, **options) == [everything[i] for i in expected]


def test_an_unknown_name_lists_the_closest_ones(source: str) -> None:
    with pytest.raises(UserError) as error:
        captions(source=source, artists=["claude-monnet"])
    assert "data.options.artists: no artist 'claude-monnet' (closest: claude-monet" in str(error.value)
    assert "4 artists in all" in str(error.value)


def test_filters_that_match_nothing_are_one_error(source: str) -> None:
    with pytest.raises(
        UserError, match=r"no painting matches artists=\['katsushika-hokusai'\], styles=\['Impressionism'\]"
    ):
        captions(source=source, artists=["katsushika-hokusai"], styles=["Impressionism"])


def test_a_dataset_without_class_labels_is_refused(tmp_path: Path) -> None:
    from datasets import Image as ImageFeature
    from datasets import Value

    path = tmp_path / "plain" / "data" / "train-00000-of-00001.parquet"
    write_parquet(
        path,
        {"image": [image_cell(encode(pattern_image(0)))], "artist": ["monet"]},
        {"image": ImageFeature(), "artist": Value("string")},
    )
    with isolated_datasets(tmp_path / "hf-cache"), pytest.raises(UserError) as error:
        captions(source=str(tmp_path / "plain"))
    assert "column 'artist' is a Value, expected class labels as in huggan/wikiart" in str(error.value)
