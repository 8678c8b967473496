"""The generic adapters (hub, imagefolder) and what every adapter shares: sources, skipping, keys, errors."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

import adaptkit.data.rows as rows_module
from adaptkit.data.loading import build_adapter, limit_examples
from adaptkit.errors import UserError
from adaptkit.testing.datasets import (
    write_hostile_dataset,
    write_hostile_images,
    write_imagefolder,
    write_newyorker,
    write_parquet,
    write_pokemon,
    write_simpsons,
)

from dataset_helpers import _isolated_cache, load  # noqa: F401  (autouse fixture)


def captions(dataset) -> list[str]:
    return [dataset[i].captions[0] for i in range(len(dataset))]


# --------------------------------------------------------------------------- hub


def test_hub_detects_columns_of_a_local_copy(tmp_path: Path) -> None:
    local = write_simpsons(tmp_path / "copy", rows=3, caption_column="caption")
    adapter = build_adapter("hub", {"path": "someone/simpsons", "source": str(local.path)})
    assert adapter.source_spec().source == str(local.path)
    assert captions(adapter.load()) == local.text["caption"]


def test_hub_source_defaults_to_path() -> None:
    adapter = build_adapter("hub", {"path": "lambdalabs/naruto-blip-captions"})
    assert adapter.source_spec().source == "lambdalabs/naruto-blip-captions"


def test_hub_named_columns_and_key_column(tmp_path: Path) -> None:
    local = write_newyorker(tmp_path / "ny", contests=3, rows_per_contest=2)
    dataset = load(
        "hub",
        path="x/y",
        source=str(local.path),
        config="explanation",
        caption_column="caption_choices",
        key_column="instance_id",
    )
    assert len(dataset) == 6  # instance ids are unique: nothing merged
    assert dataset[1].captions == ["caption 1 for cartoon 500"] and dataset[1].key == "00500001"
    merged = load(
        "hub",
        path="x/y",
        source=str(local.path),
        config="explanation",
        caption_column="image_description",
        key_column="contest_number",
    )
    assert merged.keys() == ["500", "501", "502"]
    with pytest.raises(UserError, match=r"no caption column 'text', 'caption', .*; columns: image, contest_number"):
        load("hub", path="x/y", source=str(local.path), config="explanation")


def test_hub_requires_path_and_names_bad_columns(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"test.toml: data.options.path: required key is missing"):
        build_adapter("hub", {}, source="test.toml")
    local = write_simpsons(tmp_path / "copy", rows=2)
    expected = r"no image column 'picture' \(set \[data.options\] image_column\); columns: image, text"
    with pytest.raises(UserError, match=expected):
        load("hub", path="x/y", source=str(local.path), image_column="picture")


def test_offline_hub_id_says_how_to_use_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    for name, options, hub_id in [
        ("naruto", {}, "lambdalabs/naruto-blip-captions"),
        ("hub", {"path": "someone/style-set"}, "someone/style-set"),
    ]:
        with pytest.raises(UserError) as error:
            load(name, **options)
        message = str(error.value)
        assert "\n" not in message
        assert f"dataset '{name}' ({hub_id}): cannot reach the Hugging Face Hub" in message
        assert 'source = "/path/to/copy"' in message


def test_trust_remote_code_is_passed_only_when_asked() -> None:
    from adaptkit.data.loading import load_arguments

    plain = build_adapter("hub", {"path": "someone/set", "config": "small"}).source_spec()
    assert load_arguments(plain) == {"path": "someone/set", "name": "small", "split": "train"}
    trusting = build_adapter("hub", {"path": "someone/set", "trust_remote_code": True}).source_spec()
    assert load_arguments(trusting)["trust_remote_code"] is True
    assert "trust_remote_code" not in load_arguments(build_adapter("pokemon").source_spec())


# --------------------------------------------------------------------------- local sources


def test_source_may_be_a_parquet_file_or_a_glob(tmp_path: Path) -> None:
    local = write_pokemon(tmp_path / "pokemon", rows=4)
    folder_keys = load("pokemon", source=str(local.path)).keys()
    parquet = next((local.path / "data").glob("*.parquet"))
    assert load("pokemon", source=str(parquet)).keys() == folder_keys
    assert load("pokemon", source=str(local.path / "data" / "*.parquet")).keys() == folder_keys


def test_missing_local_path_and_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset 'naruto' \(\./nowhere\): no such file or folder '\./nowhere'"):
        load("naruto", source="./nowhere")
    local = write_pokemon(tmp_path / "pokemon", rows=2)
    with pytest.raises(UserError, match=r"dataset 'pokemon' .*cannot load split 'test': Unknown split \"test\""):
        load("pokemon", source=str(local.path), split="test")


def test_keys_are_stable_content_hashes(tmp_path: Path) -> None:
    first = load("naruto", source=str(write_pokemon(tmp_path / "a", rows=4, en_column="text").path)).keys()
    again = load("naruto", source=str(write_pokemon(tmp_path / "b", rows=4, en_column="text").path)).keys()
    assert first == again and len(set(first)) == 4
    assert all(len(key) == 16 and int(key, 16) >= 0 for key in first)


def test_identical_images_are_merged(tmp_path: Path) -> None:
    from adaptkit.testing.datasets import encode, image_cell, pattern_image

    same = image_cell(encode(pattern_image(1)))
    cells = [same, image_cell(encode(pattern_image(2))), same]
    write_parquet(
        tmp_path / "dup" / "data.parquet",
        {"image": cells, "text": ["one", "two", "one again"]},
        {"image": datasets.Image(), "text": datasets.Value("string")},
    )
    dataset = load("naruto", source=str(tmp_path / "dup" / "data.parquet"))
    assert len(dataset) == 2 and dataset.merged == 1
    assert dataset[0].captions == ["one", "one again"]


def test_images_are_decoded_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = rows_module.decode_rgb_and_alpha
    monkeypatch.setattr(rows_module, "decode_rgb_and_alpha", lambda data: calls.append(1) or original(data))
    dataset = load("pokemon", source=str(write_pokemon(tmp_path / "p", rows=6).path))
    assert len(dataset) == 6 and calls == []
    dataset[4]
    assert calls == [1]


def test_dataset_and_transform_survive_pickling_for_loader_workers(tmp_path: Path) -> None:
    import pickle
    import random

    from adaptkit.data.pipeline import ImagePipeline
    from adaptkit.recipe import DataSection

    dataset = load("pokemon", source=str(write_pokemon(tmp_path / "p", rows=3).path))
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.keys() == dataset.keys() and copy[2].captions == dataset[2].captions
    pipeline = pickle.loads(
        pickle.dumps(ImagePipeline.from_data_section(DataSection(adapter="pokemon", resolution=16)))
    )
    assert pipeline(copy[0].image, random.Random(0)).pixel_values.shape == (3, 16, 16)


def test_limit_examples(tmp_path: Path) -> None:
    dataset = load("pokemon", source=str(write_pokemon(tmp_path / "p", rows=5).path))
    limited = limit_examples(dataset, 3)
    assert len(limited) == 3 and [limited[i].key for i in range(3)] == dataset.keys()[:3]
    assert limit_examples(dataset, None) is dataset and limit_examples(dataset, 9) is dataset


# --------------------------------------------------------------------------- skipping


def test_hostile_rows_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    local = write_hostile_dataset(tmp_path / "hostile")
    dataset = load("naruto", source=str(local.path))
    assert local.rows == 14
    assert len(dataset) == 8  # 7 unusual images + truncated.jpg, which only fails when decoded
    assert dataset.skipped == 6
    assert dict(dataset.skip_reasons) == {"undecodable image": 3, "no caption": 3}
    assert "dataset 'naruto'" in caplog.text
    assert "skipped 6 of 14 rows (undecodable image: 3, no caption: 3)" in caplog.text
    examples = [dataset[i] for i in range(len(dataset))]
    assert dataset.skipped == 7 and dataset.skip_reasons["undecodable image"] == 4
    assert examples[7].captions == examples[0].captions  # the broken row yields the next usable one
    assert {e.image.mode for e in examples} == {"RGB"}
    by_name = {e.captions[0].split(": ")[1]: np.asarray(e.image) for e in examples[:7]}
    assert by_name["gray16.png"][0, 0].tolist() == [128, 128, 128]  # scaled, not clipped to white
    assert by_name["palette.png"][0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert by_name["palette.png"][0, -1].tolist() == [0, 0, 255]
    assert by_name["cmyk.jpg"][0, 0].tolist() == pytest.approx([255, 0, 0], abs=3)
    assert by_name["float.tiff"][0, 0].tolist() == [128, 128, 128]


def test_no_usable_rows_is_one_clear_error(tmp_path: Path) -> None:
    from adaptkit.testing.datasets import broken_images, image_cell

    cells = [image_cell(data) for name, data in broken_images().items() if name != "truncated.jpg"]
    write_parquet(
        tmp_path / "bad" / "data.parquet",
        {"image": cells, "text": ["a", "b", None]},
        {"image": datasets.Image(), "text": datasets.Value("string")},
    )
    with pytest.raises(UserError) as error:
        load("naruto", source=str(tmp_path / "bad" / "data.parquet"))
    message = str(error.value)
    assert "dataset 'naruto'" in message and "no usable rows in split 'train'" in message
    assert "skipped 3 of 3 rows (undecodable image: 2, no caption: 1)" in message


# --------------------------------------------------------------------------- imagefolder


@pytest.mark.parametrize("kind", ["jsonl", "csv", "txt"])
def test_imagefolder_captions(tmp_path: Path, kind: str) -> None:
    local = write_imagefolder(tmp_path / "folder", rows=4, captions=kind)
    dataset = load("imagefolder", source=str(local.path))
    assert captions(dataset) == local.text["text"]
    assert dataset[0].image.mode == "RGB"


@pytest.mark.parametrize("kind", ["jsonl", "txt"])
def test_imagefolder_without_split_names_loads_as_datasets_would_in_one_glob(tmp_path: Path, kind: str) -> None:
    """A folder whose paths name no split is given to datasets as its own default pattern (one glob of
    the tree instead of one per split pattern); the rows are the ones datasets' own detection gives."""
    from adaptkit.data.loading import SourceSpec, load_arguments

    local = write_imagefolder(tmp_path / "folder", rows=4, captions=kind)
    spec = SourceSpec("imagefolder", str(local.path), builder="imagefolder")
    arguments = load_arguments(spec)
    assert arguments["data_files"] == {"train": "**"}
    ours = datasets.load_dataset(**arguments)
    theirs = datasets.load_dataset(**{k: v for k, v in arguments.items() if k != "data_files"})
    assert ours.column_names == theirs.column_names and len(ours) == len(theirs) == 4
    for column in ours.column_names:
        same = [a.tobytes() for a in ours[column]] if column == "image" else ours[column]
        assert same == ([b.tobytes() for b in theirs[column]] if column == "image" else theirs[column])


def test_imagefolder_with_split_folders_keeps_datasets_detection(tmp_path: Path) -> None:
    from adaptkit.data.loading import SourceSpec, load_arguments

    write_imagefolder(tmp_path / "folder" / "train", rows=3)
    write_imagefolder(tmp_path / "folder" / "test", rows=2)
    spec = SourceSpec("imagefolder", str(tmp_path / "folder"), builder="imagefolder")
    arguments = load_arguments(spec)
    assert "data_files" not in arguments
    assert len(datasets.load_dataset(**arguments)) == 3  # the train/ folder only, as datasets splits it


def test_imagefolder_caption_column(tmp_path: Path) -> None:
    local = write_imagefolder(tmp_path / "folder", rows=3, captions="jsonl", caption_column="description")
    assert captions(load("imagefolder", source=str(local.path))) == local.text["description"]
    other = write_imagefolder(tmp_path / "other", rows=2, captions="csv", caption_column="alt")
    assert captions(load("imagefolder", source=str(other.path), caption_column="alt")) == other.text["alt"]
    expected = r"no caption column 'title' \(set \[data.options\] caption_column\); columns: image, alt"
    with pytest.raises(UserError, match=expected):
        load("imagefolder", source=str(other.path), caption_column="title")


def test_imagefolder_needs_a_folder(tmp_path: Path) -> None:
    expected = r"dataset 'imagefolder' .*source must be a local folder of images; .* is not a folder"
    with pytest.raises(UserError, match=expected):
        load("imagefolder", source=str(tmp_path / "missing"))


def test_imagefolder_with_hostile_files(tmp_path: Path) -> None:
    write_hostile_images(tmp_path / "hostile")
    dataset = load("imagefolder", source=str(tmp_path / "hostile"))
    assert len(dataset) == 8 and dataset.skipped == 3
    modes = {dataset[i].image.mode for i in range(len(dataset))}
    assert modes == {"RGB"} and dataset.skipped == 4


def test_caption_affixes_reach_training_and_the_text_cache(tmp_path, tiny_model_dir) -> None:
    """data.caption_prefix / caption_suffix: every caption the run trains on (and caches) carries them,
    space-joined; an empty caption stays empty; without them the captions are untouched."""
    from adaptkit.data.run_examples import with_affixes
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import make_trainer, write_recipe

    assert with_affixes("a ninja", "<tok>", "style") == "<tok> a ninja style"
    assert with_affixes("", "<tok>", "") == "" and with_affixes("a", "", "") == "a"
    data = write_naruto(tmp_path / "naruto", rows=4).path
    path = write_recipe(
        tmp_path,
        tiny_model_dir,
        data,
        data={"caption_prefix": "sks,", "caption_suffix": "in ink"},
        sample={"prompts": []},
    )
    trainer = make_trainer(path)
    try:
        captions = [caption for info in trainer.training_data.infos for caption in info.captions]
        assert captions and all(c.startswith("sks, ") and c.endswith(" in ink") for c in captions)
        drawn = [trainer.training_examples[position]["caption"] for position in range(4)]
        trainer.text_cache.lookup(drawn, "cpu")  # first-draw: cached as a batch draws them
        cached = [key for key in trainer.text_cache.cached() if key]
        assert cached and all(key.startswith("sks, ") for key in cached)  # cached as trained
    finally:
        trainer.cleanup()
