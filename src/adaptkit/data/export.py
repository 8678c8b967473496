"""Write any adapter's examples as a Hugging Face imagefolder (PNG files + ``metadata.jsonl``), or as
WebDataset tar shards (``000000.tar``: ``000000000.png`` + ``000000000.json`` per sample, the JSON
holding the captions, key and image size).

An imagefolder loads with ``load_dataset("imagefolder", data_dir=...)`` and with adaptkit's own
``imagefolder`` adapter, so a procedural or remote dataset can be frozen, shared or edited by hand;
the shards load with the ``shards`` adapter (and WebDataset readers), for datasets too large for one folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adaptkit.component import Example, StyleDataset
from adaptkit.errors import UserError

METADATA = "metadata.jsonl"


def _file_name(index: int, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", key)[:60].strip("-.") or "image"
    return f"{index:06d}-{safe}.png"


@contextmanager
def _new_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir``, renamed to it when the block ends without error (removed
    when it fails), so an interrupted export leaves nothing half-written; an existing ``out_dir`` is refused."""
    if out_dir.exists():
        raise UserError(f"{out_dir}: already exists; choose a new folder (nothing was written)")
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _examples(dataset: StyleDataset, limit: int | None) -> Iterator[tuple[int, Example]]:
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):
        yield index, dataset[index]


def export_imagefolder(dataset: StyleDataset, out_dir: Path, limit: int | None = None) -> int:
    """Write up to ``limit`` examples into the new folder ``out_dir``; return how many.

    Each row of ``metadata.jsonl`` has ``file_name``, ``text`` (the first caption), ``captions``
    (all of them) and ``key``.
    """
    written = 0
    with _new_folder(out_dir) as tmp, (tmp / METADATA).open("w", encoding="utf-8") as metadata:
        for index, example in _examples(dataset, limit):
            name = _file_name(index, example.key)
            example.image.convert("RGB").save(tmp / name, format="PNG")
            row = {"file_name": name, "text": example.captions[0], "captions": example.captions, "key": example.key}
            metadata.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    return written


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def write_tar_shards(
    samples: Iterator[tuple[bytes, dict]], out_dir: Path, per_shard: int, image_extension: str = "png"
) -> int:
    """Write ``(encoded image, json metadata)`` samples as shards of ``per_shard`` into the new folder
    ``out_dir``; return how many samples."""
    if per_shard < 1:
        raise UserError(f"--per-shard: must be at least 1, got {per_shard}")
    written = 0
    with _new_folder(out_dir) as tmp:
        archive: tarfile.TarFile | None = None
        try:
            for index, (image, metadata) in enumerate(samples):
                if index % per_shard == 0:
                    if archive is not None:
                        archive.close()
                    archive = tarfile.open(tmp / f"{index // per_shard:06d}.tar", "w", format=tarfile.USTAR_FORMAT)
                _add_member(archive, f"{index:09d}.{image_extension}", image)
                _add_member(archive, f"{index:09d}.json", json.dumps(metadata, ensure_ascii=False).encode())
                written += 1
        finally:
            if archive is not None:
                archive.close()
    return written


def export_tar_shards(dataset: StyleDataset, out_dir: Path, per_shard: int = 1000, limit: int | None = None) -> int:
    """Write up to ``limit`` examples as WebDataset tar shards into the new folder ``out_dir``: each
    sample a PNG and a JSON of ``caption`` (the first), ``captions``, ``key``, ``width`` and ``height``;
    return how many."""

    def samples() -> Iterator[tuple[bytes, dict]]:
        for _, example in _examples(dataset, limit):
            buffer = io.BytesIO()
            example.image.convert("RGB").save(buffer, format="PNG")
            width, height = example.image.size
            metadata = {"caption": example.captions[0], "captions": example.captions, "key": example.key}
            yield buffer.getvalue(), metadata | {"width": width, "height": height}

    return write_tar_shards(samples(), out_dir, per_shard)
