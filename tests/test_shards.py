"""The ``shards`` adapter: tar (WebDataset) and parquet shards indexed without reading an image,
read block by block in a seeded, resumable order, with bad samples skipped when drawn."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptkit.cli import main
from adaptkit.data.export import write_tar_shards
from adaptkit.data.loading import build_adapter
from adaptkit.errors import UserError
from adaptkit.testing.datasets import broken_images, encode, image_cell, pattern_image, write_parquet
from adaptkit.testing.family_runs import adapter_tensors, train
from adaptkit.training.block_order import BlockOrder

from training_helpers import make_trainer, write_recipe


def samples(count: int, start: int = 0):
    for i in range(start, start + count):
        yield encode(pattern_image(i)), {"caption": f"picture {i}", "key": str(i)}


def tar_shards(folder: Path, count: int = 10, per_shard: int = 4) -> Path:
    write_tar_shards(samples(count), folder, per_shard)
    return folder


def load(source: Path | str, split: str = "train", **options):
    return build_adapter("shards", {"source": str(source), **options}).load(split)


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def test_tar_shards_are_indexed_in_order_and_read_back_exactly(tmp_path: Path) -> None:
    dataset = load(tar_shards(tmp_path / "shards", count=10, per_shard=4))
    assert len(dataset) == 10
    assert dataset.keys()[:2] == ["000000.tar/000000000", "000000.tar/000000001"]
    assert dataset.keys()[9] == "000002.tar/000000009"
    assert dataset.blocks() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    for index in (0, 5, 9):
        example = dataset[index]
        assert example.captions == [f"picture {index}"]
        assert np.array_equal(np.asarray(example.image), np.asarray(pattern_image(index)))
        assert example.meta["shard"] == f"{index // 4:06d}.tar"


def test_opening_reads_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import adaptkit.data.shards as shards

    decoded = []
    real = shards.decode_rgb_and_alpha
    monkeypatch.setattr(shards, "decode_rgb_and_alpha", lambda data: decoded.append(data) or real(data))
    dataset = load(tar_shards(tmp_path / "shards", count=12, per_shard=5))
    assert len(dataset.keys()) == 12 and len(dataset.blocks()) == 12
    assert decoded == []
    dataset[7]
    assert len(decoded) == 1


def test_img2dataset_layout_txt_captions_and_json_without_caption(tmp_path: Path) -> None:
    folder = tmp_path / "img2dataset"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as archive:
        add(archive, "00000/000000000.jpg", encode(pattern_image(1), "JPEG"))
        add(archive, "00000/000000000.txt", b"a cat on a mat\n")
        add(archive, "00000/000000000.json", json.dumps({"url": "http://x", "width": 32}).encode())
        add(archive, "00000/000000001.webp", encode(pattern_image(2), "WEBP"))
        add(archive, "00000/000000001.json", json.dumps({"text": "a dog"}).encode())
        add(archive, "00000/000000002.txt", b"no image here")
    dataset = load(folder)
    assert dataset.keys() == ["00000.tar/00000/000000000", "00000.tar/00000/000000001"]
    assert dataset[0].captions == ["a cat on a mat"] and dataset[0].meta["file_name"] == "000000000.jpg"
    assert dataset[1].captions == ["a dog"] and dataset[1].image.size == (32, 24)


def test_a_bad_image_or_a_missing_caption_is_skipped_when_drawn_and_counted(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    with tarfile.open(folder / "a.tar", "w") as archive:
        add(archive, "0.png", encode(pattern_image(0)))
        add(archive, "0.txt", b"fine")
        add(archive, "1.png", broken_images()["truncated.png"])
        add(archive, "1.txt", b"broken")
        add(archive, "2.png", encode(pattern_image(2)))
        add(archive, "3.png", encode(pattern_image(3)))
        add(archive, "3.txt", b"also fine")
    dataset = load(folder)
    assert len(dataset) == 4 and dataset.skipped == 0
    assert dataset[1].captions == ["also fine"]  # 1 undecodable, 2 without a caption: the next usable one
    assert dict(dataset.skip_reasons) == {"undecodable image": 1, "no caption": 1}
    assert "a.tar: sample '1': undecodable image" in caplog.text
    assert dataset[2].captions == ["also fine"] and dataset.skipped == 2  # known bad: not counted twice


def test_parquet_shards_read_by_row_group(tmp_path: Path) -> None:
    from datasets import Image, Value

    features = {"image": Image(), "text": Value("string")}
    root = tmp_path / "hub" / "data"
    for shard in range(2):
        rows = range(shard * 5, shard * 5 + 5)
        columns = {"image": [image_cell(encode(pattern_image(i))) for i in rows], "text": [f"row {i}" for i in rows]}
        write_parquet(root / f"train-{shard:05d}-of-00002.parquet", columns, features)
    write_parquet(
        root / "test-00000-of-00001.parquet",
        {"image": [image_cell(encode(pattern_image(99)))], "text": ["held"]},
        features,
    )
    dataset = load(tmp_path / "hub")
    assert len(dataset) == 10
    assert dataset.keys()[6] == "data/train-00001-of-00002.parquet#1"
    assert dataset[6].captions == ["row 6"]
    assert np.array_equal(np.asarray(dataset[6].image), np.asarray(pattern_image(6)))
    assert len(set(dataset.blocks())) == 2
    test = load(tmp_path / "hub", split="test")
    assert len(test) == 1 and test[0].captions == ["held"]


def test_parquet_row_groups_are_blocks(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [{"bytes": encode(pattern_image(i)), "path": None} for i in range(7)]
    table = pa.table({"jpg": images, "caption": [f"c{i}" for i in range(7)]})
    (tmp_path / "p").mkdir()
    pq.write_table(table, tmp_path / "p" / "part.parquet", row_group_size=3)
    dataset = load(tmp_path / "p")
    assert dataset.blocks() == [0, 0, 0, 1, 1, 1, 2]
    assert [dataset[i].captions[0] for i in range(7)] == [f"c{i}" for i in range(7)]


def test_an_fsspec_url_is_read_in_place(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    local = tar_shards(tmp_path / "shards", count=6, per_shard=3)
    for path in sorted(local.iterdir()):
        memory.pipe(f"/remote/{path.name}", path.read_bytes())
    dataset = load("memory://remote")
    assert len(dataset) == 6 and dataset[4].captions == ["picture 4"]


@pytest.mark.parametrize(
    ("make", "split", "message"),
    [
        (lambda root: root, "train", "no .tar or .parquet shards in"),
        (lambda root: (root / "a.tar.gz").write_bytes(b"x") and root, "train", "compressed tar shards"),
        (lambda root: (root / "a.tar").write_bytes(b"not a tar" * 200) and root, "train", "a.tar: not a readable tar"),
        (lambda root: tar_shards(root / "s") and root, "validation", "no shards of split 'validation'"),
        (lambda root: root / "missing", "train", "no such file or folder"),
    ],
    ids=["empty", "compressed", "corrupt", "no-such-split", "missing"],
)
def test_bad_sources_are_one_line(tmp_path: Path, make, split: str, message: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UserError) as error:
        load(make(root), split=split)
    text = str(error.value)
    assert message in text and "dataset 'shards'" in text and "\n" not in text, text


def test_a_parquet_shard_without_the_columns_is_named(tmp_path: Path) -> None:
    from datasets import Image, Value

    write_parquet(
        tmp_path / "p" / "a.parquet",
        {"image": [image_cell(encode(pattern_image(0)))], "text": ["x"]},
        {"image": Image(), "text": Value("string")},
    )
    write_parquet(
        tmp_path / "p" / "b.parquet",
        {"image": [image_cell(encode(pattern_image(1)))], "words": ["y"]},
        {"image": Image(), "words": Value("string")},
    )
    with pytest.raises(
        UserError, match=r"b\.parquet: no column 'text' \(the first shard has it\); columns: image, words"
    ):
        load(tmp_path / "p")


def test_the_block_order_is_a_seeded_permutation_drawn_block_by_block() -> None:
    blocks = [b for b in range(6) for _ in range(5)]  # 6 blocks of 5
    order = BlockOrder(blocks, seed=1, in_flight=2)
    epoch = [order.index_of(p) for p in range(30)]
    assert sorted(epoch) == list(range(30))
    # two blocks at a time: each run of 10 draws comes from two blocks
    assert all(len({blocks[i] for i in epoch[start : start + 10]}) == 2 for start in (0, 10, 20))
    assert [order.index_of(p) for p in range(30, 60)] != epoch  # a new order each epoch
    again = BlockOrder(blocks, seed=1, in_flight=2)
    assert [again.index_of(p) for p in range(45, 60)] == [order.index_of(p) for p in range(45, 60)]
    assert [BlockOrder(blocks, seed=2, in_flight=2).index_of(p) for p in range(30)] != epoch
    repeated = BlockOrder(blocks, seed=1, repeats=[2 if i < 5 else 1 for i in range(30)])
    assert Counter(repeated.index_of(p) for p in range(35)) == Counter(
        {**{i: 2 for i in range(5)}, **{i: 1 for i in range(5, 30)}}
    )


def test_a_run_on_shards_draws_block_by_block_and_resumes_exactly(tmp_path: Path, tiny_model_dir: Path) -> None:
    shards = tar_shards(tmp_path / "shards", count=12, per_shard=3)
    sections = dict(
        # images decoded every step, in two forked workers, each opening its own shard handles
        data={"adapter": "shards", "random_flip": True, "cache_latents": False, "options": {"source": str(shards)}},
        train={"steps": 4, "num_workers": 2},
        sample={"prompts": []},
    )
    trainer = make_trainer(write_recipe(tmp_path, tiny_model_dir, None, name="order", **sections))
    try:
        examples = trainer.training_data.examples
        assert isinstance(examples.order, BlockOrder)
        drawn = [examples.index_of(p) for p in range(12)]
        assert sorted(drawn) == list(range(12))
    finally:
        trainer.cleanup()
    straight = adapter_tensors(train(write_recipe(tmp_path, tiny_model_dir, None, name="straight", **sections)))
    stopped = write_recipe(tmp_path, tiny_model_dir, None, name="stopped", **sections)
    train(stopped, "train.steps=2", "checkpoint.every=2")
    resumed = adapter_tensors(train(stopped, "checkpoint.every=2", resume="latest"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_export_writes_tar_shards_the_adapter_reads(tmp_path: Path, capsys) -> None:
    recipe = Path(__file__).parents[1] / "recipes" / "tiny-smoke.toml"
    assert main(["data", "export", str(recipe), str(tmp_path / "out"), "--format", "tar", "--per-shard", "5"]) == 0
    assert 'adapter = "shards"' in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "000000.tar",
        "000001.tar",
        "000002.tar",
        "000003.tar",
    ]
    exported = load(tmp_path / "out")
    source = build_adapter("embedded-styles", {"style": "pop", "count": 16}).load()
    assert len(exported) == 16
    for index in (0, 7, 15):
        assert exported[index].captions == source[index].captions
        assert np.array_equal(np.asarray(exported[index].image), np.asarray(source[index].image.convert("RGB")))


@pytest.mark.parametrize("format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_the_fast_header_reader_agrees_with_tarfile(tmp_path: Path, format: int) -> None:
    import fsspec

    from adaptkit.data.shard_index import _NotPlainUstar, _plain_members, _tarfile_members

    path = tmp_path / "a.tar"
    deep = "/".join(["folder"] * 15)  # 104 characters: a ustar prefix, a GNU long name or a pax path
    with tarfile.open(path, "w", format=format) as archive:
        for i, name in enumerate(["0.png", f"{deep}/1.png", "ünï/2.txt", "3.json"]):
            add(archive, name, bytes([i]) * (700 * i + 1))
    fs = fsspec.filesystem("file")
    with fs.open(str(path), "rb") as handle:
        expected = list(_tarfile_members(handle))
        try:
            fast = list(_plain_members(handle))
        except _NotPlainUstar:
            assert format != tarfile.USTAR_FORMAT  # only GNU long names and pax headers fall back
            fast = expected
    assert fast == expected and len(expected) == 4
    assert load(tmp_path).keys() == ["a.tar/0", f"a.tar/{deep}/1"]


def test_a_truncated_shard_skips_the_samples_it_lost(tmp_path: Path) -> None:
    shards = tar_shards(tmp_path / "shards", count=4, per_shard=4)
    data = (shards / "000000.tar").read_bytes()
    last = data.rindex(b"000000003.png")  # cut into the last sample's image
    (shards / "000000.tar").write_bytes(data[: last + 512 + 100])
    dataset = load(shards)
    assert len(dataset) == 4
    assert dataset.sizes() == [(32, 24)] * 3 + [(1, 1)]  # the cut image's size is unknown, not an error
    assert dataset[3].captions == ["picture 0"]  # the cut image is skipped: the next (wrapping round) is used
    assert dataset.skip_reasons["undecodable image"] == 1


@pytest.mark.parametrize(
    ("offline", "reachable", "message"),
    [
        (
            True,
            True,
            "the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE); download it (hf download --repo-type "
            "dataset owner/name --local-dir DIR) and set source to DIR",
        ),
        (False, False, "cannot reach the Hugging Face Hub; download it"),
    ],
)
def test_a_hub_url_without_the_hub_is_one_line(monkeypatch, offline: bool, reachable: bool, message: str) -> None:
    import adaptkit.data.loading as loading

    monkeypatch.setattr(loading, "hub_offline", lambda: offline)
    monkeypatch.setattr(loading, "hub_reachable", lambda: reachable)
    with pytest.raises(UserError) as error:
        load("hf://datasets/owner/name/data")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_url_scheme_is_one_line() -> None:
    with pytest.raises(UserError, match=r"cannot list 'nosuchscheme://x/y': .*nosuchscheme"):
        load("nosuchscheme://x/y")


def test_sizes_come_from_the_json_or_the_image_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    import adaptkit.data.shards as shards

    folder = tmp_path / "sized"
    folder.mkdir()
    with tarfile.open(folder / "a.tar", "w") as archive:
        add(archive, "0.png", encode(pattern_image(0, (40, 20))))
        add(archive, "0.json", json.dumps({"caption": "wide", "width": 40, "height": 20}).encode())
        add(archive, "1.jpg", encode(pattern_image(1, (20, 50)), "JPEG"))
        add(archive, "1.txt", b"tall, size from its header")
        add(archive, "2.png", b"\x89PNG broken")
        add(archive, "2.txt", b"unreadable")
    monkeypatch.setattr(shards, "decode_rgb_and_alpha", lambda data: pytest.fail("decoded an image"))
    assert load(folder).sizes() == [(40, 20), (20, 50), (1, 1)]


def test_exported_shards_carry_sizes_and_parquet_needs_size_columns(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import adaptkit.data.shards as shards
    from adaptkit.data.export import export_tar_shards

    export_tar_shards(build_adapter("embedded-styles", {"style": "pop", "count": 3}).load(), tmp_path / "t")
    monkeypatch.setattr(shards, "header_size", lambda data: pytest.fail("read an image header"))
    assert load(tmp_path / "t").sizes() == [(64, 64)] * 3  # from the JSON the export wrote
    cells = [{"bytes": encode(pattern_image(i, (30 + i, 20))), "path": None} for i in range(3)]
    (tmp_path / "p").mkdir()
    (tmp_path / "q").mkdir()
    pq.write_table(
        pa.table({"jpg": cells, "caption": ["a", "b", "c"], "width": [30, 31, 32], "height": [20] * 3}),
        tmp_path / "p" / "part.parquet",
    )
    pq.write_table(pa.table({"jpg": cells, "caption": ["a", "b", "c"]}), tmp_path / "q" / "part.parquet")
    assert load(tmp_path / "p").sizes() == [(30, 20), (31, 20), (32, 20)]
    assert load(tmp_path / "q").sizes() is None  # unknown without decoding: buckets then describe every image


def test_a_bucketed_run_on_shards_decodes_only_what_it_draws(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "mixed"
    shapes = [(64, 32), (60, 34), (32, 32), (40, 40), (30, 60), (28, 50)]
    samples = ((encode(pattern_image(i, size)), {"caption": f"plate {i}"}) for i, size in enumerate(shapes))
    write_tar_shards(samples, folder, per_shard=2)  # no sizes in the JSON: read from the headers
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lora",
        sample={"prompts": []},
        train={"steps": 1},
        data={"adapter": "shards", "options": {"source": str(folder)}, "bucketing": True},
    )
    trainer = make_trainer(recipe)
    try:
        assert set(trainer.training_data.sizes) == {(40, 24), (32, 32), (24, 40)}
        assert trainer.training_data.examples.order.blocks == [0, 0, 1, 1, 2, 2]  # buckets drawn block by block
        assert trainer.training_data.infos.described == 0  # nothing decoded before the first step
        trainer.train()
        assert 0 < trainer.training_data.infos.described <= 2
    finally:
        trainer.cleanup()
