"""``hub``: any image-caption dataset on the Hub (or a local copy), columns chosen by options."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, named_or_detected, pick_column
from adaptkit.data.loading import SourceSpec

if TYPE_CHECKING:
    from datasets import Features


class HubAdapter(SourceAdapter):
    """Any Hub dataset with an image and a caption column.

    ``path`` is the Hub id; ``source`` (default: ``path``) may point at a local copy instead.
    Columns are detected (the Image column; text, caption, ...) unless named.
    """

    name = "hub"
    description = "Any Hub image-caption dataset: set path, and image_column/caption_column if not detected."

    class Options(SourceOptions):
        """Options of the ``hub`` adapter."""

        path: str = Field(..., description="Hub dataset id, e.g. 'lambdalabs/naruto-blip-captions'.")
        source: str | None = source_field(None, description="A local copy of the dataset; default: path.")
        config: str | None = Field(None, description="Hub config (subset) name.")
        image_column: str | None = Field(None, description="Image column; default: the first Image-typed column.")
        caption_column: str | None = Field(
            None, description="Caption column (text or list of texts); default: text, caption, captions, ..."
        )
        key_column: str | None = Field(
            None, description="Column identifying an image; rows sharing it are merged. Default: image content hash."
        )
        trust_remote_code: bool = Field(
            False, description="Let a script-based dataset run its code (unsafe; unsupported by datasets>=4)."
        )

    options: Options

    def source_spec(self, split: str | None = None) -> SourceSpec:
        """As for every adapter, with ``source`` defaulting to ``path``."""
        spec = super().source_spec(split)
        if self.options.source is None:
            return replace(spec, source=self.options.path)
        return spec

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """The named columns, or detected ones."""
        options = self.options
        label = spec.label
        image, caption = named_or_detected(features, options.image_column, options.caption_column, dataset=label)
        key = pick_column(features, (options.key_column,), dataset=label, role="key") if options.key_column else None
        return ColumnMap(image=image, caption=caption, key=key)
