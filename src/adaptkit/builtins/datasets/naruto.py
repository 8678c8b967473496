"""``naruto``: lambdalabs/naruto-blip-captions (columns ``image``, ``text``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, detect_image_column, pick_column
from adaptkit.data.loading import SourceSpec

if TYPE_CHECKING:
    from datasets import Features

HUB_ID = "lambdalabs/naruto-blip-captions"


class NarutoAdapter(SourceAdapter):
    """Naruto anime frames with BLIP captions."""

    name = "naruto"
    description = f"Naruto anime frames with BLIP captions ({HUB_ID})."

    class Options(SourceOptions):
        """Options of the ``naruto`` adapter."""

        source: str = source_field(HUB_ID)

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: ``text``."""
        return ColumnMap(
            image=detect_image_column(features, dataset=spec.label),
            caption=pick_column(features, ("text",), dataset=spec.label, role="caption"),
        )
