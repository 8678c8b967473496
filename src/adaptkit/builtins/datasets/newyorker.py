"""``newyorker``: jmhessel/newyorker_caption_contest, one example per cartoon."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, detect_image_column, pick_column
from adaptkit.data.loading import SourceSpec

if TYPE_CHECKING:
    from datasets import Features

HUB_ID = "jmhessel/newyorker_caption_contest"
#: The column that identifies a cartoon: rows sharing it are merged into one example.
KEY_COLUMN = "contest_number"


class NewYorkerAdapter(SourceAdapter):
    """New Yorker caption-contest cartoons (grayscale, varied sizes), deduplicated by ``contest_number``.

    The dataset has several rows per cartoon (one per caption or question); they become one
    example whose captions are the distinct values of the ``caption`` column.
    """

    name = "newyorker"
    description = f"New Yorker cartoons, one per contest, described in words ({HUB_ID})."

    class Options(SourceOptions):
        """Options of the ``newyorker`` adapter."""

        source: str = source_field(HUB_ID)
        config: str = Field(
            "explanation",
            description="Hub config: explanation, matching or ranking (also _1.._4 folds and _from_pixels variants).",
        )
        caption: str = Field(
            "image_description",
            description="Caption column: image_description, image_uncanny_description, image_location, "
            "questions, caption_choices or label (the columns depend on the config).",
        )

    options: Options

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: the ``caption`` option's column; key: ``contest_number``."""
        return ColumnMap(
            image=detect_image_column(features, dataset=spec.label),
            caption=pick_column(
                features, (self.options.caption,), dataset=spec.label, role="caption", option="caption"
            ),
            key=pick_column(features, (KEY_COLUMN,), dataset=spec.label, role="key"),
        )
