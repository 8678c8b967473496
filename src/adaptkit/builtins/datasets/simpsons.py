"""``simpsons``: Simpsons frames with BLIP captions, from one of several Hub copies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, detect_caption_column, detect_image_column
from adaptkit.data.loading import SourceSpec

if TYPE_CHECKING:
    from datasets import Features

HUB_ID = "jinmel/simpsons-blip-captions-pil"
#: Hub copies of the dataset; their column names are detected from ``features``.
KNOWN_SOURCES: tuple[str, ...] = (HUB_ID, "skiracer/simpsons_blip_captions", "Norod78/simpsons-blip-captions")


class SimpsonsAdapter(SourceAdapter):
    """Simpsons frames with BLIP captions; the image and caption columns are detected."""

    name = "simpsons"
    description = f"Simpsons frames with BLIP captions ({', '.join(KNOWN_SOURCES)})."

    class Options(SourceOptions):
        """Options of the ``simpsons`` adapter."""

        source: str = source_field(
            HUB_ID, description=f"One of {', '.join(KNOWN_SOURCES)}, or a local copy (folder, parquet file or glob)."
        )

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: the first of text, caption, captions, ... present."""
        return ColumnMap(
            image=detect_image_column(features, dataset=spec.label),
            caption=detect_caption_column(features, dataset=spec.label),
        )
