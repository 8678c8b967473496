"""A lazily decoded :class:`~adaptkit.StyleDataset` over the rows of a ``datasets.Dataset``.

Building it scans the rows once *without decoding pixels*: it reads the caption(s), hashes the
encoded image bytes (the stable key, unless a key column is given), checks the image header
(and PNG checksums), merges rows that share a key, and skips — and counts — rows with no
caption or an unreadable image. Pixels are decoded only in ``__getitem__``.
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.component import Example, StyleDataset
from adaptkit.data.columns import ColumnMap, check_column, is_image_feature
from adaptkit.data.images import ALPHA_KEY, FILE_NAME_KEY, UndecodableImage, check_image, decode_rgb_and_alpha
from adaptkit.data.loading import SourceSpec
from adaptkit.errors import UserError, first_line

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger("adaptkit.data")

NO_CAPTION = "no caption"
NO_IMAGE = "no image"
BAD_IMAGE = "undecodable image"
SCAN_BATCH = 256
#: What reading one image's data raises: check_image/decode_rgb turn every PIL failure into
#: UndecodableImage; OSError is a path cell whose file cannot be read.
DECODE_ERRORS = (UndecodableImage, OSError)


@dataclass
class Entry:
    """One example found by the scan: its first row, key, captions and the header's size and mode."""

    row: int
    key: str
    captions: list[str]
    size: tuple[int, int]
    mode: str
    rows: int = 1


def normalize_captions(value: Any) -> list[str]:
    """A caption cell (string, list of strings, or None) -> the non-empty stripped captions."""
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [str(value)]
    return [text.strip() for text in values if isinstance(text, str) and text.strip()]


def image_bytes(value: Any) -> bytes | None:
    """The encoded bytes of an image cell (``{bytes, path}``, bytes, or a path), or None if there is none."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        value = value.get("path")
        if value is None:
            return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return Path(value).expanduser().read_bytes()
    raise TypeError(f"not an encoded image: {type(value).__name__}")


def content_key(data: bytes) -> str:
    """A stable key from image bytes: the first 16 hex digits of their SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


class SkipsAtDraw(StyleDataset):
    """A dataset whose examples may turn out unusable only when drawn: such an example is counted
    (``skipped``, ``skip_reasons``), logged once per reason, and the next usable one is returned
    in its place, so every index still gives an example. Subclasses implement :meth:`_decode`
    and call :meth:`_drop` when it fails."""

    name: str
    #: How messages name the dataset, e.g. ``dataset 'pokemon' (svjack/pokemon-blip-captions-en-zh)``.
    label: str

    def __init__(self) -> None:
        self._bad: set[int] = set()
        self.skip_reasons: Counter[str] = Counter()
        self.skipped = 0
        self._found_early: Counter[str] = Counter()

    def count_early(self, reasons: Counter[str]) -> None:
        """Count the rows a scan before training skipped (logged by the scan itself)."""
        self.skip_reasons.update(reasons)
        self.skipped = sum(self.skip_reasons.values())
        self._found_early.update(reasons)

    def describe_skips(self, total: int | None = None) -> str:
        """``skipped 3 of 10 rows (undecodable image: 2, no caption: 1)``."""
        of = f" of {total}" if total is not None else ""
        if not self.skipped:
            return f"skipped 0{of} rows"
        detail = ", ".join(f"{reason}: {count}" for reason, count in self.skip_reasons.most_common())
        return f"skipped {self.skipped}{of} rows ({detail})"

    def __getitem__(self, index: int) -> Example:
        """The example at ``index``; one found unusable only now is skipped (counted) for the next one."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"{self.name}: index {index} out of range for {count} examples")
        index %= count
        for offset in range(count):
            position = (index + offset) % count
            if position in self._bad:
                continue
            example = self._decode(position)
            if example is not None:
                return example
        raise UserError(f"{self.label}: no usable rows: every image failed to decode or had no caption")

    @abstractmethod
    def _decode(self, position: int) -> Example | None:
        """The example at ``position``, or None after :meth:`_drop` when it is unusable."""

    def _drop(self, position: int, reason: str, where: str, detail: str = "") -> None:
        """Mark ``position`` unusable: count it, and log the first one of ``reason`` found while drawing."""
        self._bad.add(position)
        self.skipped += 1
        self.skip_reasons[reason] += 1
        first = self.skip_reasons[reason] == self._found_early[reason] + 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "%s: %s: %s%s; skipping it%s",
            self.label,
            where,
            reason,
            f" ({detail})" if detail else "",
            " (further ones are only counted)" if first else "",
        )


class RowsDataset(SkipsAtDraw):
    """Random access to examples over a ``datasets.Dataset``, decoded on demand.

    Attributes: ``name`` (the adapter), ``source``, ``skipped`` (rows dropped, total),
    ``skip_reasons`` (count per reason), ``merged`` (rows folded into an earlier row with the same key).
    Build it with :meth:`from_rows`.
    """

    def __init__(self, spec: SourceSpec, images: datasets.Dataset, image_column: str, entries: list[Entry]) -> None:
        super().__init__()
        self.name = spec.dataset
        self.label = spec.label
        self.source = spec.source
        self.spec = spec
        self._images = images
        self._image_column = image_column
        self._entries = entries
        self.merged = sum(entry.rows - 1 for entry in entries)

    # -- building ------------------------------------------------------------------

    @classmethod
    def from_rows(cls, spec: SourceSpec, rows: datasets.Dataset, columns: ColumnMap) -> RowsDataset:
        """Scan ``rows`` (no pixel decoding) and return the dataset; UserError if no row is usable."""
        from datasets import Image

        features = rows.features
        check_column(features, columns.image, dataset=spec.label, role="image")
        check_column(features, columns.caption, dataset=spec.label, role="caption")
        if columns.key is not None:
            check_column(features, columns.key, dataset=spec.label, role="key")
        images = rows.select_columns([columns.image])
        if is_image_feature(features[columns.image]):
            images = images.cast_column(columns.image, Image(decode=False))
        wanted = list(dict.fromkeys(c for c in (columns.caption, columns.key) if c is not None))
        texts = rows.select_columns(wanted)
        reasons: Counter[str] = Counter()
        entries = _scan(_zip_batches(images, texts), columns, reasons, spec.label)
        dataset = cls(spec, images, columns.image, entries)
        dataset.count_early(reasons)
        if not entries:
            skips = dataset.describe_skips(len(rows))
            raise UserError(f"{spec.label}: no usable rows in split '{spec.split}' ({skips})")
        if dataset.skipped:
            logger.warning("%s: %s", spec.label, dataset.describe_skips(len(rows)))
        return dataset

    # -- access --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """Every example's key, without decoding any image."""
        return [entry.key for entry in self._entries]

    def sizes(self) -> list[tuple[int, int]]:
        """Every example's image size as decoded, from the scan's header reads."""
        return [entry.size for entry in self._entries]

    def _decode(self, position: int) -> Example | None:
        entry = self._entries[position]
        cell = self._images[entry.row][self._image_column]
        try:
            image, alpha = decode_rgb_and_alpha(image_bytes(cell) or b"")
        except DECODE_ERRORS as exc:
            self._drop(position, BAD_IMAGE, _where(entry.row, cell), first_line(exc))
            return None
        meta = {"row": entry.row, "rows": entry.rows, "original_size": entry.size, "original_mode": entry.mode}
        if alpha is not None:  # the loss mask of data.masked_loss
            meta[ALPHA_KEY] = alpha
        path = cell.get("path") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
        if path:  # the image's file name, for a mask file of the same name (data.mask_dir)
            meta[FILE_NAME_KEY] = Path(str(path)).name
        return Example(image=image, captions=list(entry.captions), key=entry.key, meta=meta)


def _zip_batches(images: datasets.Dataset, texts: datasets.Dataset) -> Iterator[dict[str, Any]]:
    """Rows as dicts, reading both column sets batch by batch."""
    for image_batch, text_batch in zip(images.iter(SCAN_BATCH), texts.iter(SCAN_BATCH), strict=True):
        batch = {**text_batch, **image_batch}
        for i in range(len(next(iter(batch.values())))):
            yield {name: values[i] for name, values in batch.items()}


def _where(row_index: int, cell: Any) -> str:
    """``row 3`` or ``row 3 (photo.png)``: how a skip message names a row."""
    path = cell.get("path") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
    return f"row {row_index} ({path})" if path else f"row {row_index}"


def _skip(reasons: Counter[str], reason: str, label: str, row_index: int, cell: Any, detail: str = "") -> None:
    """Count a skipped row; log the first one per reason as a warning naming the row (and file), the rest at debug."""
    reasons[reason] += 1
    level = logging.WARNING if reasons[reason] == 1 else logging.DEBUG
    more = " (further ones are only counted)" if reasons[reason] == 1 else ""
    logger.log(level, "%s: %s: %s%s; skipping it%s", label, _where(row_index, cell), reason, detail, more)


def _scan(rows: Iterable[dict[str, Any]], columns: ColumnMap, reasons: Counter[str], label: str = "") -> list[Entry]:
    """Check every row, merge rows by key, count the skipped ones in ``reasons``."""
    entries: list[Entry] = []
    by_key: dict[str, Entry] = {}
    for row_index, row in enumerate(rows):
        captions = normalize_captions(row[columns.caption])
        if not captions:
            _skip(reasons, NO_CAPTION, label, row_index, row[columns.image])
            continue
        key_value = row.get(columns.key) if columns.key is not None else None
        if key_value is not None and str(key_value) in by_key:  # another row of a known example
            _merge(by_key[str(key_value)], captions)
            continue
        try:
            data = image_bytes(row[columns.image])
        except OSError:  # a path that does not exist
            data = None
        if data is None:
            _skip(reasons, NO_IMAGE, label, row_index, row[columns.image])
            continue
        try:
            size, mode = check_image(data)
        except DECODE_ERRORS as exc:
            _skip(reasons, BAD_IMAGE, label, row_index, row[columns.image], f" ({first_line(exc)})")
            continue
        key = str(key_value) if key_value is not None else content_key(data)
        if key in by_key:  # the same image bytes as an earlier row
            _merge(by_key[key], captions)
            continue
        entry = Entry(row_index, key, list(dict.fromkeys(captions)), size, mode)
        by_key[key] = entry
        entries.append(entry)
    return entries


def _merge(entry: Entry, captions: list[str]) -> None:
    """Fold another row of ``entry`` into it: count it, keep its new captions."""
    entry.rows += 1
    entry.captions.extend(c for c in captions if c not in entry.captions)
