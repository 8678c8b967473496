"""``pokemon``: svjack/pokemon-blip-captions-en-zh, BLIP captions in English or Chinese."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from adaptkit.data.adapter import SourceAdapter, SourceOptions, source_field
from adaptkit.data.columns import ColumnMap, detect_image_column, pick_column
from adaptkit.data.loading import SourceSpec

if TYPE_CHECKING:
    from datasets import Features

HUB_ID = "svjack/pokemon-blip-captions-en-zh"

#: Caption columns per language, in order of preference (copies of the dataset disagree).
CAPTION_COLUMNS: dict[str, tuple[str, ...]] = {"en": ("en_text", "text"), "zh": ("zh_text", "text_zh")}


class PokemonAdapter(SourceAdapter):
    """Pokémon drawings with BLIP captions; ``language`` picks the English or the Chinese caption."""

    name = "pokemon"
    description = f"Pokémon drawings with BLIP captions in English or Chinese ({HUB_ID})."

    class Options(SourceOptions):
        """Options of the ``pokemon`` adapter."""

        source: str = source_field(HUB_ID)
        language: Literal["en", "zh"] = Field(
            "en", description="Caption language: en (column en_text, else text) or zh (zh_text, else text_zh)."
        )

    options: Options

    def columns(self, features: Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: the chosen language's column."""
        return ColumnMap(
            image=detect_image_column(features, dataset=spec.label),
            caption=pick_column(
                features, CAPTION_COLUMNS[self.options.language], dataset=spec.label, role="caption", option="language"
            ),
        )
