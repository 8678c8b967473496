"""``imagefolder``: a local folder of images with captions in metadata or ``.txt`` sidecars."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import CAPTION_CANDIDATES, ColumnMap, detect_caption_column, detect_image_column, pick_column
from adaptkit.data.loading import SourceSpec
from adaptkit.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset, Features

#: The column that captions read from ``.txt`` sidecar files go into.
SIDECAR_COLUMN = "text"
#: The metadata files the ``datasets`` imagefolder builder reads (in any subfolder).
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")

logger = logging.getLogger("adaptkit.data")


def metadata_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each row of a metadata file.

    ``where`` is ``line N`` (jsonl) or ``row N`` (csv and parquet, counting data rows from 1).
    Lines that are not JSON objects, and files that cannot be parsed, are left for ``datasets``
    to report.
    """
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    yield f"line {number}", row
    elif path.suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            try:
                yield from ((f"row {number}", row) for number, row in enumerate(csv.DictReader(handle), start=1))
            except csv.Error:
                return
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
            return
        for number, row in enumerate(table.to_pylist(), start=1):
            yield f"row {number}", row


def _file_names(row: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The ``file_name`` / ``*_file_name`` values of a row, and each entry of ``file_names`` / ``*_file_names``."""
    for key, value in row.items():
        if not isinstance(key, str):
            continue
        if key == "file_name" or key.endswith("_file_name"):
            yield key, value
        elif (key == "file_names" or key.endswith("_file_names")) and isinstance(value, list):
            for item in value:
                yield key, item


def escapes_folder(file_name: str) -> bool:
    """Whether a metadata ``file_name`` leaves the metadata file's folder: absolute, ``..`` or a URL."""
    if "://" in file_name:
        return True
    posix = file_name.replace("\\", "/")
    if posix.startswith("/") or os.path.isabs(file_name):
        return True
    return ".." in PurePosixPath(os.path.normpath(posix).replace("\\", "/")).parts


def check_metadata(paths: list[Path], label: str) -> None:
    """Refuse a metadata file whose ``file_name`` points outside its folder, naming the file, row and value.

    ``datasets`` refuses these too, but only as "An error occurred while generating the dataset".
    """
    for path in paths:
        for where, row in metadata_rows(path):
            for key, value in _file_names(row):
                if isinstance(value, str) and escapes_folder(value):
                    raise UserError(
                        f"{path}: {where}: {key} {value!r} points outside the folder {path.parent} ({label}); "
                        "use a path relative to the metadata file's folder, e.g. 'image_000.png' or 'sub/a.png'"
                    )


def scan_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(metadata files, symbolic links to folders)`` in ``folder`` and its subfolders, in one walk.

    Hidden folders are left out, as ``datasets`` leaves them out; links are not followed.
    """
    metadata, links = [], []
    for parent, names, files in os.walk(folder):
        names[:] = sorted(name for name in names if not name.startswith("."))
        links.extend(Path(parent, name) for name in names if os.path.islink(os.path.join(parent, name)))
        metadata.extend(Path(parent, name) for name in sorted(files) if name in METADATA_FILES)
    return metadata, links


def read_sidecar(image_path: str | None) -> str | None:
    """The caption in the ``.txt`` file beside ``image_path`` (same stem), or None."""
    if not image_path:
        return None
    sidecar = Path(image_path).with_suffix(".txt")
    return sidecar.read_text(encoding="utf-8", errors="replace") if sidecar.is_file() else None


class ImageFolderAdapter(SourceAdapter):
    """A folder in the Hugging Face imagefolder layout, or images with ``.txt`` caption sidecars.

    With ``metadata.jsonl`` / ``metadata.csv`` (``file_name`` + a caption column) the caption
    column is detected (text, caption, ...) or named by ``caption_column``; without one, each
    image's caption is read from the ``.txt`` file of the same name.
    """

    name = "imagefolder"
    description = "A local folder of images: metadata.jsonl/.csv captions or .txt sidecar files."
    builder = "imagefolder"

    class Options(SourceOptions):
        """Options of the ``imagefolder`` adapter."""

        source: str = source_field(description="The folder holding the images (searched recursively).")
        caption_column: str | None = Field(
            None, description="Metadata column holding the caption; default: text, caption, ... or .txt sidecars."
        )

    options: Options

    def source_spec(self, split: str | None = None) -> SourceSpec:
        """As for every adapter; ``source`` must be an existing folder."""
        spec = super().source_spec(split)
        if not Path(spec.source).expanduser().is_dir():
            raise UserError(f"{spec.label}: source must be a local folder of images; {spec.source!r} is not a folder")
        return spec

    def check_source(self, spec: SourceSpec) -> None:
        """Refuse metadata that points outside the folder; warn (one line) about symlinked subfolders.

        Without metadata files, ``datasets`` lists the images itself and does not follow symbolic
        links to folders, so their images are not loaded: the warning says how many such folders
        were skipped (symlinked image *files* are read, and so are images a metadata file names,
        links or not).
        """
        folder = Path(spec.source).expanduser()
        metadata, links = scan_folder(folder)
        check_metadata(metadata, spec.label)
        if links and not metadata:
            shown = ", ".join(str(link.relative_to(folder)) for link in links[:3]) + (", ..." if len(links) > 3 else "")
            logger.warning(
                "%s: skipping %d symlinked subfolder%s (%s): datasets does not follow links to folders; "
                "copy the images in, or list them in a metadata.jsonl",
                spec.label,
                len(links),
                "" if len(links) == 1 else "s",
                shown,
            )

    def prepare(self, rows: Dataset, spec: SourceSpec) -> Dataset:
        """Add captions from ``.txt`` sidecars when the metadata has no caption column."""
        from datasets import Image, Value

        if self.options.caption_column or any(name in rows.features for name in CAPTION_CANDIDATES):
            return rows
        image_column = detect_image_column(rows.features, dataset=spec.label)
        paths = rows.select_columns([image_column]).cast_column(image_column, Image(decode=False))
        captions = [read_sidecar((row[image_column] or {}).get("path")) for row in paths]
        return rows.add_column(SIDECAR_COLUMN, captions, feature=Value("string"))

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: ``caption_column``, a detected one, or the sidecar captions."""
        label = spec.label
        caption_column = self.options.caption_column
        caption = (
            pick_column(features, (caption_column,), dataset=label, role="caption", option="caption_column")
            if caption_column
            else detect_caption_column(features, dataset=label, option="caption_column")
        )
        return ColumnMap(image=detect_image_column(features, dataset=label), caption=caption)
