"""``imagefolder``: a local folder of images with captions in metadata or ``.txt`` sidecars."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import CAPTION_CANDIDATES, ColumnMap, detect_caption_column, detect_image_column, pick_column
from adaptkit.data.loading import SourceSpec
from adaptkit.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset, Features

#: The column that captions read from ``.txt`` sidecar files go into.
SIDECAR_COLUMN = "text"


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
