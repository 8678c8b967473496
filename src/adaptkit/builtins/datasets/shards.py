"""``shards``: tar (WebDataset, img2dataset) or parquet shards, local or at a URL, read in place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, named_or_detected
from adaptkit.data.loading import SourceSpec
from adaptkit.data.shards import ShardedDataset

if TYPE_CHECKING:
    from datasets import Features

    from adaptkit.component import StyleDataset


class ShardsAdapter(SourceAdapter):
    """A large dataset as shards, read where they lie: nothing is scanned, hashed or decoded before
    training starts, and training reads it shard by shard in a seeded, resumable order.

    ``source`` is a folder, glob or file of uncompressed ``.tar`` shards in the WebDataset layout
    (``000123.jpg`` with ``000123.txt``, or a ``.json`` holding ``caption``/``text``: what img2dataset
    writes) or of ``.parquet`` shards with an image and a caption column (a Hub dataset's ``data/``
    folder), on disk or at an fsspec URL such as ``hf://datasets/owner/name``. Files whose names
    contain a split (``train-00000-of-00004.parquet``) are chosen by ``split``.

    With ``[data] bucketing`` each micro-batch is one bucket and the epoch still goes block by block
    (:class:`~adaptkit.training.buckets.BucketOrder` with the blocks), so each parquet row group is
    read about once an epoch.
    """

    name = "shards"
    description = "Tar (WebDataset/img2dataset) or parquet shards, on disk or at hf://..., read lazily shard by shard."

    class Options(SourceOptions):
        """Options of the ``shards`` adapter."""

        source: str = source_field(
            description="A folder, glob or file of .tar or .parquet shards, or a URL, e.g. hf://datasets/owner/name."
        )
        image_column: str | None = Field(
            None, description="Parquet: the image column; default: the first Image-typed column, image, img, ..."
        )
        caption_column: str | None = Field(
            None, description="Parquet: the caption column; default: text, caption, captions, ..."
        )

    options: Options

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Parquet shards: the named columns, or detected ones."""
        options = self.options
        image, caption = named_or_detected(features, options.image_column, options.caption_column, dataset=spec.label)
        return ColumnMap(image=image, caption=caption)

    def read(self, spec: SourceSpec) -> StyleDataset:
        """The shards of ``spec``'s split, indexed (headers and footers only)."""
        return ShardedDataset.open(self.name, spec.label, spec.source, spec.split, lambda f: self.columns(f, spec))
