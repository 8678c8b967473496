"""Finding a sharded dataset's files and indexing them without reading any image.

A sharded source is a folder, a glob or a single file of uncompressed WebDataset ``.tar`` shards
(img2dataset's output: ``000123.jpg`` beside ``000123.txt`` or ``000123.json``) or ``.parquet``
shards (a Hub dataset's ``data/train-00000-of-00004.parquet``), on local disk or at any fsspec URL,
e.g. ``hf://datasets/owner/name``, which reads a Hub dataset in place through ``huggingface_hub``.

Indexing reads only tar headers and parquet footers, so it costs per shard (and per tar member),
never per image byte: no image is opened, decoded or hashed before training starts.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError, first_line

if TYPE_CHECKING:
    import datasets
    from fsspec import AbstractFileSystem

SHARD_SUFFIXES = (".tar", ".parquet")
#: Member extensions read as the image of a WebDataset sample, in order of preference.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
#: Member extensions read as its caption: plain text, or a JSON object (see :func:`json_caption`).
TEXT_EXTENSIONS = ("txt", "caption", "json")


@dataclass(frozen=True)
class Member:
    """Where one tar member's bytes are: offset and size in the shard, and its extension."""

    offset: int
    size: int
    extension: str


@dataclass
class Shard:
    """One shard file: its path on the file system, its name relative to the source, and its samples.

    Tar shards list ``samples`` (the WebDataset key and its image and caption members); parquet
    shards list their row groups' sizes.
    """

    path: str
    name: str
    kind: str  # "tar" or "parquet"
    samples: list[tuple[str, Member, Member | None]] = field(default_factory=list)
    row_groups: list[int] = field(default_factory=list)
    #: a parquet shard's column names
    columns: tuple[str, ...] = ()


def file_system(source: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec file system and path of ``source`` (a local path, ``~`` expanded, or a URL)."""
    from fsspec.core import url_to_fs

    return url_to_fs(source if "://" in source else os.path.expanduser(source))


def find_shards(source: str, split: str, label: str) -> tuple[AbstractFileSystem, list[tuple[str, str]]]:
    """The file system and ``(path, name)`` of every shard of ``split`` under ``source``, sorted by name.

    A source whose files name no split is all ``train``. Raises a one-line UserError when nothing
    fits, naming what was found.
    """
    if source.startswith("hf://"):
        _check_hub(source, label)
    try:
        fs, root = file_system(source)
        if any(char in root for char in "*?["):
            paths, base = sorted(fs.glob(root)), root.split("*")[0].rsplit("/", 1)[0]
        elif fs.isdir(root):
            paths, base = sorted(fs.find(root)), root
        elif fs.exists(root):
            paths, base = [root], root.rsplit("/", 1)[0]
        else:
            raise UserError(f"{label}: no such file or folder {source!r}")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a remote file system raises its own client's errors (httpx, aiohttp, ...)
        raise UserError(f"{label}: cannot list {source!r}: {first_line(exc)}") from exc
    names = {path: path[len(base) :].lstrip("/") or path.rsplit("/", 1)[-1] for path in paths}
    if any(path.endswith((".tar.gz", ".tgz", ".tar.zst", ".tar.bz2")) for path in paths):
        raise UserError(f"{label}: {source}: compressed tar shards cannot be read at random; use uncompressed .tar")
    shards = [path for path in paths if path.endswith(SHARD_SUFFIXES) and not _hidden(names[path])]
    kinds = {path.rsplit(".", 1)[-1] for path in shards}
    if not shards:
        raise UserError(f"{label}: no .tar or .parquet shards in {source}")
    if len(kinds) > 1:
        raise UserError(f"{label}: {source} holds both .tar and .parquet shards; point source at one kind")
    chosen = _of_split([names[path] for path in shards], split)
    if chosen is None:
        found = sorted({word for name in (names[p] for p in shards) for word in _splits_named(name)})
        raise UserError(f"{label}: no shards of split '{split}' in {source} (splits named: {', '.join(found)})")
    paths_by_name = {names[path]: path for path in shards}
    return fs, [(paths_by_name[name], name) for name in chosen]


def _check_hub(source: str, label: str) -> None:
    """Refuse an ``hf://`` source in one line when offline mode is on or the Hub does not answer."""
    from adaptkit.data.loading import hub_offline, hub_reachable

    repository = "/".join(source.removeprefix("hf://").split("/")[1:3])
    fix = f"download it (hf download --repo-type dataset {repository} --local-dir DIR) and set source to DIR"
    if hub_offline():
        raise UserError(f"{label}: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE); {fix}")
    if not hub_reachable():
        raise UserError(f"{label}: cannot reach the Hugging Face Hub; {fix}")


def _hidden(name: str) -> bool:
    return any(part.startswith((".", "_")) for part in name.split("/"))


def _split_words() -> dict[str, list[str]]:
    """Each split's names as ``datasets`` recognises them in file names (``train``/``training``, …)."""
    from datasets.data_files import SPLIT_KEYWORDS

    return {str(split): list(words) for split, words in SPLIT_KEYWORDS.items()}


def _splits_named(name: str) -> set[str]:
    """The splits a shard's path names (by whole words, as ``train-00000-of-00002.parquet`` does)."""
    words = set(re.split(r"[/_.\-]", name.lower()))
    return {split for split, synonyms in _split_words().items() if words & set(synonyms)}


def _of_split(names: list[str], split: str) -> list[str] | None:
    """The names of ``split``'s shards; all of them when none names a split and ``split`` is train."""
    named = {name: _splits_named(name) for name in names}
    if not any(named.values()):
        return names if split == "train" else None
    wanted = next((key for key, synonyms in _split_words().items() if split in synonyms), split)
    chosen = [name for name in names if wanted in named[name]]
    return chosen or None


class _NotPlainUstar(Exception):
    """A tar header the fast reader leaves to :mod:`tarfile` (pax, GNU long names, base-256 sizes)."""


def _plain_members(handle: Any) -> Iterator[tuple[str, bool, int, int]]:
    """``(name, is_file, data offset, size)`` of each member of a plain ustar/v7 tar, read header by
    header (512 bytes, then a seek past the data): about ten times faster than :mod:`tarfile`'s
    parser on shards of small files. Raises :class:`_NotPlainUstar` at the first header it does not
    read, and ``tarfile.ReadError`` at a header whose checksum is wrong."""
    offset = 0
    while True:
        handle.seek(offset)
        header = handle.read(512)
        if len(header) < 512 or header.count(0) == 512:  # the end-of-archive blocks (or a short tail)
            return
        kind = header[156:157]
        if kind in (b"x", b"g", b"L", b"K") or header[124] & 0x80:
            raise _NotPlainUstar
        try:
            checksum, size = (
                int(header[148:156].strip(b" \0") or b"0", 8),
                int(header[124:136].strip(b" \0") or b"0", 8),
            )
        except ValueError:
            raise tarfile.ReadError(f"bad header at byte {offset}") from None
        if checksum != sum(header[:148]) + 256 + sum(header[156:]):
            raise tarfile.ReadError(f"bad header checksum at byte {offset}")
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar" and header[345] != 0:
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
        yield name.decode("utf-8", "surrogateescape"), kind in (b"0", b"\0", b"7"), offset + 512, size
        offset += 512 + (size + 511) // 512 * 512


def _tarfile_members(handle: Any) -> Iterator[tuple[str, bool, int, int]]:
    """The same as :func:`_plain_members`, through :mod:`tarfile` (every header it reads)."""
    handle.seek(0)
    with tarfile.open(fileobj=handle, mode="r:") as archive:
        for info in archive:
            yield info.name, info.isfile(), info.offset_data, info.size


def index_tar(fs: AbstractFileSystem, path: str, name: str, label: str) -> Shard:
    """Read a tar shard's headers (not its members' data) into samples, grouped by WebDataset key.

    A key is the member's path up to the first dot of its file name; a sample is used when it has
    an image member, and its caption member is the first text one found (``txt``, ``caption``, ``json``).
    """
    try:
        with fs.open(path, "rb") as handle:
            try:
                found = _group_members(_plain_members(handle))
            except _NotPlainUstar:
                found = _group_members(_tarfile_members(handle))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{label}: {name}: not a readable tar shard ({first_line(exc)})") from exc
    shard = Shard(path, name, "tar")
    for key, members in found.items():
        image = next((members[ext] for ext in IMAGE_EXTENSIONS if ext in members), None)
        if image is not None:
            text = next((members[ext] for ext in TEXT_EXTENSIONS if ext in members), None)
            shard.samples.append((key, image, text))
    return shard


def _group_members(members: Iterable[tuple[str, bool, int, int]]) -> dict[str, dict[str, Member]]:
    """Files grouped by WebDataset key, then by (lower-case) extension."""
    found: dict[str, dict[str, Member]] = {}
    for member, is_file, offset, size in members:
        if not is_file:
            continue
        folder, _, file_name = member.rpartition("/")
        stem, dot, extension = file_name.partition(".")
        if not dot or file_name.startswith("."):
            continue
        key = f"{folder}/{stem}" if folder else stem
        found.setdefault(key, {})[extension.lower()] = Member(offset, size, extension.lower())
    return found


def index_parquet(fs: AbstractFileSystem, path: str, name: str, label: str) -> tuple[Shard, datasets.Features]:
    """A parquet shard's row groups (from its footer) and its columns as ``datasets`` features."""
    import datasets
    import pyarrow.parquet as pq

    try:
        with fs.open(path, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
            schema = metadata.schema.to_arrow_schema()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"{label}: {name}: not a readable parquet shard ({first_line(exc)})") from exc
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    shard = Shard(path, name, "parquet", row_groups=groups, columns=tuple(schema.names))
    return shard, datasets.Features.from_arrow_schema(schema)


def _json_object(data: bytes) -> dict[str, Any]:
    """A WebDataset ``.json`` member as a dict ({} when it is not a JSON object)."""
    import json

    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def json_caption(data: bytes) -> Any:
    """The caption of a WebDataset ``.json`` member: its first caption-named key (None if there is none)."""
    from adaptkit.data.columns import CAPTION_CANDIDATES

    value = _json_object(data)
    return next((value[key] for key in CAPTION_CANDIDATES if value.get(key)), None)


def json_size(data: bytes) -> tuple[int, int] | None:
    """The stored image's ``width`` and ``height`` in a WebDataset ``.json`` member (img2dataset and
    ``adaptkit data export --format tar`` write them), or None."""
    value = _json_object(data)
    return image_size(value.get("width"), value.get("height"))


def image_size(width: Any, height: Any) -> tuple[int, int] | None:
    """``(width, height)`` when both are positive integers (metadata can say anything), else None."""
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None
