"""A :class:`~adaptkit.StyleDataset` over tar or parquet shards, read where they lie, block by block.

Opening it indexes the shards (:mod:`adaptkit.data.shard_index`: tar headers, parquet footers) and
nothing more: each example's key comes from where it is (``shard/key`` for a tar sample,
``shard#row`` for a parquet row), not from hashing its bytes, and an image is read and decoded only
when training draws it. A sample without a caption or with an undecodable image is skipped then,
and counted. Rows are not merged by content: a sharded dataset is taken as prepared.

Its blocks (:meth:`ShardedDataset.blocks`) are tar shards and parquet row groups, so training reads
it block by block (:class:`~adaptkit.training.block_order.BlockOrder`); each process keeps at most
:data:`BLOCKS_IN_FLIGHT` + 1 parquet row groups in memory, and no tar data.
"""

from __future__ import annotations

import os
from array import array
from collections import OrderedDict
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from adaptkit.component import Example
from adaptkit.data.columns import ColumnMap
from adaptkit.data.images import ALPHA_KEY, FILE_NAME_KEY, decode_rgb_and_alpha, header_size
from adaptkit.data.rows import BAD_IMAGE, DECODE_ERRORS, NO_CAPTION, SkipsAtDraw, image_bytes, normalize_captions
from adaptkit.data.shard_index import (
    Member,
    Shard,
    find_shards,
    image_size,
    index_parquet,
    index_tar,
    json_caption,
    json_size,
)
from adaptkit.errors import UserError, first_line

if TYPE_CHECKING:
    import datasets
    from fsspec import AbstractFileSystem

#: How many blocks an epoch draws from at once (the examples of these are shuffled together);
#: readers keep this many blocks, and one more, at hand.
BLOCKS_IN_FLIGHT = 4

#: How much of a tar member :meth:`ShardedDataset.sizes` reads for the image's header at first.
HEADER_BYTES = 4096
#: The size given an image whose header cannot be read (a square: it is skipped when drawn anyway).
UNKNOWN_SIZE = (1, 1)
#: Parquet columns holding each image's size (img2dataset writes them).
SIZE_COLUMNS = ("width", "height")

#: Chooses the image and caption columns of a parquet source from its features.
ColumnChooser = Callable[["datasets.Features"], ColumnMap]


class ShardedDataset(SkipsAtDraw):
    """The examples of a sharded source, in shard order; build it with :meth:`open`."""

    def __init__(
        self, name: str, label: str, fs: AbstractFileSystem, shards: list[Shard], columns: ColumnMap | None
    ) -> None:
        super().__init__()
        self.name, self.label, self.fs, self.shards, self.columns = name, label, fs, shards, columns
        self._shard, self._group, self._item, self._block = array("l"), array("l"), array("l"), array("l")
        block = 0
        for number, shard in enumerate(shards):
            spans = [len(shard.samples)] if shard.kind == "tar" else shard.row_groups
            for group, rows in enumerate(spans):
                for item in range(rows):
                    self._shard.append(number)
                    self._group.append(group)
                    self._item.append(item)
                    self._block.append(block)
                block += 1
        self._pid = os.getpid()
        self._handles: dict[int, BinaryIO] = {}
        self._row_groups: OrderedDict[tuple[int, int], tuple[list[Any], list[Any]]] = OrderedDict()

    @classmethod
    def open(cls, name: str, label: str, source: str, split: str, choose_columns: ColumnChooser) -> ShardedDataset:
        """Find and index the shards of ``split`` under ``source``; UserError if none holds an example."""
        fs, found = find_shards(source, split, label)
        shards: list[Shard] = []
        columns = None
        for path, shard_name in found:
            if path.endswith(".tar"):
                shards.append(index_tar(fs, path, shard_name, label))
                continue
            shard, features = index_parquet(fs, path, shard_name, label)
            if columns is None:
                columns = choose_columns(features)
            missing = [column for column in (columns.image, columns.caption) if column not in features]
            if missing:
                raise UserError(
                    f"{label}: {shard_name}: no column {missing[0]!r} (the first shard has it); "
                    f"columns: {', '.join(features)}"
                )
            shards.append(shard)
        dataset = cls(name, label, fs, shards, columns)
        if not len(dataset):
            raise UserError(f"{label}: no examples in the shards of {source}: no sample has an image")
        return dataset

    def __len__(self) -> int:
        return len(self._item)

    def keys(self) -> list[str]:
        """Every example's key (``shard/key`` or ``shard#row``), from the index alone."""
        return [self._key(position) for position in range(len(self))]

    def blocks(self) -> list[int]:
        """Per example, its block: its tar shard, or its parquet shard's row group."""
        return self._block.tolist()

    def sizes(self) -> list[tuple[int, int]] | None:
        """Per example, its image's size: for tar shards from each sample's JSON ``width``/``height``,
        else from its image's header (the first :data:`HEADER_BYTES`, or the whole image when that is
        not enough); for parquet shards from ``width``/``height`` columns, else None. No pixel is decoded."""
        if any(shard.kind == "parquet" for shard in self.shards):
            return self._parquet_sizes()
        return [
            self._tar_size(number, image, text) or UNKNOWN_SIZE
            for number, shard in enumerate(self.shards)
            for _, image, text in shard.samples
        ]

    def _tar_size(self, number: int, image: Member, text: Member | None) -> tuple[int, int] | None:
        """A tar sample's image size from its JSON, else its header; None when neither says (or the
        shard ends early)."""
        try:
            if text is not None and text.extension == "json":
                size = json_size(self._member(number, text.offset, text.size))
                if size is not None:
                    return size
            head = self._member(number, image.offset, min(image.size, HEADER_BYTES))
            return header_size(head) or header_size(self._member(number, image.offset, image.size))
        except OSError:  # a truncated shard: the sample is skipped when drawn
            return None

    def _parquet_sizes(self) -> list[tuple[int, int]] | None:
        import pyarrow.parquet as pq

        if not all(set(SIZE_COLUMNS) <= set(shard.columns) for shard in self.shards):
            return None
        sizes: list[tuple[int, int]] = []
        for shard in self.shards:
            with self.fs.open(shard.path, "rb") as handle:
                table = pq.ParquetFile(handle).read(columns=list(SIZE_COLUMNS))
            pairs = zip(table.column("width").to_pylist(), table.column("height").to_pylist(), strict=True)
            sizes.extend(image_size(width, height) or UNKNOWN_SIZE for width, height in pairs)
        return sizes

    def _key(self, position: int) -> str:
        shard = self.shards[self._shard[position]]
        if shard.kind == "tar":
            return f"{shard.name}/{shard.samples[self._item[position]][0]}"
        return f"{shard.name}#{self._row(position)}"

    def _row(self, position: int) -> int:
        """A parquet example's row in its shard."""
        shard = self.shards[self._shard[position]]
        return sum(shard.row_groups[: self._group[position]]) + self._item[position]

    def _where(self, position: int) -> str:
        shard = self.shards[self._shard[position]]
        if shard.kind == "tar":
            return f"{shard.name}: sample {shard.samples[self._item[position]][0]!r}"
        return f"{shard.name}: row {self._row(position)}"

    # -- reading -------------------------------------------------------------------

    def _decode(self, position: int) -> Example | None:
        shard = self.shards[self._shard[position]]
        try:
            data, caption, file_name = self._read(position)
        except OSError as exc:
            self._drop(position, BAD_IMAGE, self._where(position), f"cannot read it: {exc}")
            return None
        captions = normalize_captions(caption)
        if not captions:
            self._drop(position, NO_CAPTION, self._where(position))
            return None
        try:
            image, alpha = decode_rgb_and_alpha(data or b"")
        except DECODE_ERRORS as exc:
            self._drop(position, BAD_IMAGE, self._where(position), first_line(exc))
            return None
        meta: dict[str, Any] = {"shard": shard.name, "original_size": image.size, FILE_NAME_KEY: file_name}
        if alpha is not None:
            meta[ALPHA_KEY] = alpha
        return Example(image=image, captions=list(dict.fromkeys(captions)), key=self._key(position), meta=meta)

    def _read(self, position: int) -> tuple[bytes | None, Any, str]:
        """The encoded image, the caption cell and the image's file name of the example at ``position``."""
        if self._pid != os.getpid():  # a forked DataLoader worker: its own handles and row groups
            self._pid, self._handles, self._row_groups = os.getpid(), {}, OrderedDict()
        number = self._shard[position]
        shard = self.shards[number]
        if shard.kind == "tar":
            key, image, text = shard.samples[self._item[position]]
            data = self._member(number, image.offset, image.size)
            caption = None
            if text is not None:
                raw = self._member(number, text.offset, text.size)
                caption = json_caption(raw) if text.extension == "json" else raw.decode("utf-8", errors="replace")
            return data, caption, f"{PurePosixPath(key).name}.{image.extension}"
        images, captions = self._row_group(number, self._group[position])
        cell = images[self._item[position]]
        path = cell.get("path") if isinstance(cell, dict) else None
        name = PurePosixPath(str(path)).name if path else f"{PurePosixPath(shard.name).stem}-{self._row(position)}"
        return image_bytes(cell), captions[self._item[position]], name

    def _member(self, number: int, offset: int, size: int) -> bytes:
        handle = self._handles.get(number)
        if handle is None:
            handle = self._handles[number] = self.fs.open(self.shards[number].path, "rb")
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise OSError(f"the shard ends {size - len(data)} bytes early")
        return data

    def _row_group(self, number: int, group: int) -> tuple[list[Any], list[Any]]:
        """The image and caption cells of one parquet row group, kept among the last few read."""
        import pyarrow.parquet as pq

        found = self._row_groups.get((number, group))
        if found is not None:
            self._row_groups.move_to_end((number, group))
            return found
        assert self.columns is not None
        wanted = [self.columns.image, self.columns.caption]
        with self.fs.open(self.shards[number].path, "rb") as handle:
            table = pq.ParquetFile(handle).read_row_group(group, columns=wanted)
        found = (table.column(wanted[0]).to_pylist(), table.column(wanted[1]).to_pylist())
        self._row_groups[(number, group)] = found
        while len(self._row_groups) > BLOCKS_IN_FLIGHT + 1:
            self._row_groups.popitem(last=False)
        return found

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for spawned workers) without open handles or row groups."""
        return {**self.__dict__, "_handles": {}, "_row_groups": OrderedDict()}
