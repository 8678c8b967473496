"""Hostile data that used to stop a run or mislead: PNGs without pixel data, columns that hold no
images, imagefolder metadata pointing outside the folder, symlinked subfolders, a batch larger than
the dataset, and an unreachable Hub."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path

import datasets
import pytest
from PIL import Image

from adaptkit.data.images import UndecodableImage, check_image, decode_rgb
from adaptkit.errors import UserError
from adaptkit.testing.datasets import (
    encode,
    image_cell,
    pattern_image,
    png_header_only,
    write_imagefolder,
    write_naruto,
    write_parquet,
)

from dataset_helpers import _isolated_cache, load  # noqa: F401  (autouse fixture)
from training_helpers import write_recipe

# --------------------------------------------------------------------------- images


def test_a_png_without_idat_is_undecodable_not_an_index_error() -> None:
    data = png_header_only(8, 8)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IDAT" not in data
    with pytest.raises(UndecodableImage, match=r"broken image data \(IndexError: "):
        check_image(data)
    with pytest.raises(UndecodableImage):
        decode_rgb(data)


@pytest.mark.parametrize(
    "raised",
    [IndexError("list index out of range"), struct.error("unpack"), EOFError(), KeyError(3)],
)
def test_whatever_pil_raises_on_one_image_is_undecodable(monkeypatch: pytest.MonkeyPatch, raised: Exception) -> None:
    def broken_open(*args, **kwargs):
        raise raised

    monkeypatch.setattr(Image, "open", broken_open)
    for read in (check_image, decode_rgb):
        with pytest.raises(UndecodableImage) as caught:
            read(encode(pattern_image(0)))
        assert type(raised).__name__ in str(caught.value) and caught.value.__cause__ is raised


def test_memory_errors_are_not_blamed_on_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image, "open", no_memory)
    with pytest.raises(MemoryError):
        check_image(encode(pattern_image(0)))


def test_a_row_with_a_png_without_idat_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cells = [image_cell(encode(pattern_image(i))) for i in range(2)] + [image_cell(png_header_only(8, 8))]
    write_parquet(
        tmp_path / "set" / "data.parquet",
        {"image": cells, "text": ["one", "two", "no pixels"]},
        {"image": datasets.Image(), "text": datasets.Value("string")},
    )
    with caplog.at_level(logging.WARNING, logger="adaptkit.data"):
        dataset = load("naruto", source=str(tmp_path / "set" / "data.parquet"))
    assert len(dataset) == 2 and dataset.skipped == 1
    assert dict(dataset.skip_reasons) == {"undecodable image": 1}
    assert "row 2: undecodable image (broken image data (IndexError" in caplog.text


# --------------------------------------------------------------------------- columns


def test_no_column_holding_images_is_said_so_with_the_columns_there_are(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "set" / "data.parquet",
        {"image": [1, 2], "text": ["a", "b"]},
        {"image": datasets.Value("int64"), "text": datasets.Value("string")},
    )
    with pytest.raises(UserError) as caught:
        load("hub", path="x/y", source=str(tmp_path / "set" / "data.parquet"))
    message = str(caught.value)
    assert "image column 'image' does not hold images (Value('int64'))" in message
    assert "the dataset has no image column; its columns: image (int64), text (string)" in message
    assert "image columns: text" not in message and "\n" not in message


def test_an_image_column_that_is_wrong_lists_the_image_columns_there_are(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "set" / "data.parquet",
        {"picture": [image_cell(encode(pattern_image(0)))], "image": [1], "text": ["a"]},
        {"picture": datasets.Image(), "image": datasets.Value("int64"), "text": datasets.Value("string")},
    )
    with pytest.raises(UserError, match=r"image column 'image' does not hold images .*; image columns: picture$"):
        load("hub", path="x/y", source=str(tmp_path / "set" / "data.parquet"), image_column="image")


# --------------------------------------------------------------------------- imagefolder metadata


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
@pytest.mark.parametrize("bad", ["../x.png", "/etc/hostname", "sub/../../x.png", "file:///etc/hostname"])
def test_metadata_pointing_outside_the_folder_is_refused_naming_file_row_and_value(
    tmp_path: Path, kind: str, bad: str
) -> None:
    local = write_imagefolder(tmp_path / "folder", rows=3, captions=kind)
    metadata = local.path / f"metadata.{kind}"
    metadata.write_text(metadata.read_text().replace("image_001.png", bad))
    with pytest.raises(UserError) as caught:
        load("imagefolder", source=str(local.path))
    (line,) = caught.value.lines
    where = "line 2" if kind == "jsonl" else "row 2"  # the second image; csv rows count after the header
    assert line.startswith(f"{metadata}: {where}: file_name {bad!r} points outside the folder {local.path}")
    assert "An error occurred" not in line


def test_metadata_in_a_subfolder_may_name_files_below_it(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    (root / "sub" / "deeper").mkdir(parents=True)
    pattern_image(0).save(root / "sub" / "deeper" / "a.png")
    pattern_image(1).save(root / "sub" / "b.png")
    rows = [{"file_name": "deeper/./a.png", "text": "a"}, {"file_name": "deeper/../b.png", "text": "b"}]
    (root / "sub" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load("imagefolder", source=str(root))
    assert sorted(dataset[i].captions[0] for i in range(len(dataset))) == ["a", "b"]


# --------------------------------------------------------------------------- imagefolder symlinks


def sidecar_folder(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        pattern_image(10 + i).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(f"caption {name}")
    return folder


def test_symlinked_subfolders_are_reported_with_their_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = sidecar_folder(tmp_path / "elsewhere", ["x", "y"])
    root = sidecar_folder(tmp_path / "folder", ["a", "b"])
    os.symlink(elsewhere, root / "linked")
    os.symlink(elsewhere, root / "again")
    with caplog.at_level(logging.WARNING, logger="adaptkit.data"):
        dataset = load("imagefolder", source=str(root))
    assert sorted(dataset[i].captions[0] for i in range(len(dataset))) == ["caption a", "caption b"]
    (line,) = [r.getMessage() for r in caplog.records if "symlinked" in r.getMessage()]
    assert f"dataset 'imagefolder' ({root}): skipping 2 symlinked subfolders (again, linked)" in line


def test_no_symlink_line_when_metadata_names_the_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = sidecar_folder(tmp_path / "elsewhere", ["x"])
    root = write_imagefolder(tmp_path / "folder", rows=2).path
    os.symlink(elsewhere, root / "linked")
    with (root / "metadata.jsonl").open("a") as handle:
        handle.write(json.dumps({"file_name": "linked/x.png", "text": "through the link"}) + "\n")
    with caplog.at_level(logging.WARNING, logger="adaptkit.data"):
        dataset = load("imagefolder", source=str(root))
    assert "through the link" in {dataset[i].captions[0] for i in range(len(dataset))}
    assert "symlinked" not in caplog.text


# --------------------------------------------------------------------------- batch larger than the dataset


def test_a_batch_larger_than_the_dataset_is_said_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from adaptkit.resolve import load_and_resolve
    from adaptkit.training.cache import CacheSettings
    from adaptkit.training.dataprep import build_training_data

    data = write_naruto(tmp_path / "naruto", rows=3).path
    settings = CacheSettings(latents=False, text=False, directory=None)
    big = load_and_resolve(write_recipe(tmp_path, tmp_path, data, name="big", train={"batch_size": 8}))
    examples = big.dataset.load("train")
    build_training_data(examples, big.recipe, settings)  # the default log prints (one process: RANK unset)
    lines = [line for line in capsys.readouterr().out.splitlines() if "train.batch_size" in line]
    assert lines == [
        "train.batch_size = 8 is larger than the dataset (3 examples): every batch repeats examples; "
        "use train.batch_size <= 3 (or more images) to train on distinct ones"
    ]
    heard: list[str] = []
    fits = load_and_resolve(write_recipe(tmp_path, tmp_path, data, name="fits", train={"batch_size": 3}))
    build_training_data(examples, fits.recipe, settings, log=heard.append)
    assert heard == []


# --------------------------------------------------------------------------- an unreachable Hub


def closed_port() -> int:
    """A local TCP port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def online_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode off (the dataset tests and CI turn it on), so the Hub would be asked."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def point_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)


def test_hub_reachable_asks_once_and_any_answer_counts(online_mode: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptkit.data.loading import hub_reachable

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        point_hub_at(monkeypatch, f"http://127.0.0.1:{server.server_port}")
        assert hub_reachable(timeout=5) is True
    finally:
        server.shutdown()
        server.server_close()
    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    assert hub_reachable(timeout=5) is False
    assert time.monotonic() - started < 5  # no retries


def test_an_unreachable_hub_is_one_line_without_retries(
    online_mode: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        load("hub", path="someone/style-set")
    elapsed = time.monotonic() - started
    (line,) = caught.value.lines
    assert line.startswith("dataset 'hub' (someone/style-set): cannot reach the Hugging Face Hub")
    assert 'source = "/path/to/copy"' in line
    output = capfd.readouterr()
    assert "Retrying in" not in output.err + output.out
    assert elapsed < 10  # huggingface_hub's 5 retries sleep 1 + 2 + 4 + 8 + 8 s


def test_a_local_source_never_asks_the_hub(online_mode: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import adaptkit.data.loading as loading

    def no_request(*args, **kwargs) -> bool:
        raise AssertionError("asked the Hub for a local source")

    monkeypatch.setattr(loading, "hub_reachable", no_request)
    assert len(load("naruto", source=str(write_naruto(tmp_path / "naruto", rows=2).path))) == 2


def test_offline_mode_skips_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import adaptkit.data.loading as loading

    monkeypatch.setattr(loading, "hub_reachable", lambda *a, **k: pytest.fail("checked the Hub in offline mode"))
    with pytest.raises(UserError, match="cannot reach the Hugging Face Hub"):
        load("hub", path="someone/style-set")  # dataset_helpers turns offline mode on
