"""``wikiart``: paintings with artist, genre and style class labels (the ``huggan/wikiart`` schema).

The dataset has no captions: each row's caption is written from its labels with the ``caption``
template (default ``"a {genre} painting by {artist}, {style}"``, names made readable:
``vincent-van-gogh`` -> ``vincent van gogh``, ``Post_Impressionism`` -> ``post impressionism``).
``artists``, ``styles`` and ``genres`` keep only rows with one of the given label names (compared
without case, ``-``, ``_`` or spaces); a name the dataset does not have is an error listing the
closest ones. Filtering reads only the label columns, never the images.
"""

from __future__ import annotations

import difflib
import string
from typing import TYPE_CHECKING, Any

from adaptkit import ColumnMap, SourceAdapter, SourceOptions, SourceSpec, UserError, detect_image_column, source_field
from pydantic import Field, field_validator

if TYPE_CHECKING:
    import datasets

HUB_ID = "huggan/wikiart"
#: The class-label columns, in the order captions may use them.
LABELS = ("artist", "genre", "style")
CAPTION_COLUMN = "wikiart_caption"


class WikiArtOptions(SourceOptions):
    """Options of the ``wikiart`` adapter."""

    source: str = source_field(HUB_ID)
    artists: list[str] = Field(default_factory=list, description="Keep only these artists (label names); [] = all.")
    styles: list[str] = Field(default_factory=list, description="Keep only these styles (label names); [] = all.")
    genres: list[str] = Field(default_factory=list, description="Keep only these genres (label names); [] = all.")
    caption: str = Field(
        "a {genre} painting by {artist}, {style}",
        description="Caption template; fields: {artist}, {genre}, {style}.",
    )

    @field_validator("caption")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc})") from exc
        unknown = sorted(fields - set(LABELS))
        if unknown:
            raise ValueError(f"unknown field {{{unknown[0]}}} (valid: {{artist}}, {{genre}}, {{style}})")
        return template


def normalize(name: str) -> str:
    """A label name as compared: lower case, without ``-``, ``_`` or spaces."""
    return "".join(c for c in name.lower() if c not in "-_ ")


def readable(name: str) -> str:
    """A label name as written in captions: ``Post_Impressionism`` -> ``post impressionism``."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


class WikiArtAdapter(SourceAdapter):
    """WikiArt paintings, captioned from their labels, optionally filtered by artist, style or genre."""

    name = "wikiart"
    description = f"WikiArt paintings captioned from artist/genre/style labels, filterable by them ({HUB_ID})."
    Options = WikiArtOptions
    options: WikiArtOptions

    def prepare(self, rows: datasets.Dataset, spec: SourceSpec) -> datasets.Dataset:
        """Keep the rows the filters select and add a caption column written from the labels."""
        names = {label: _label_names(rows.features, label, spec) for label in LABELS}
        filters = {"artist": self.options.artists, "style": self.options.styles, "genre": self.options.genres}
        wanted = {label: _label_ids(names[label], asked, label, spec) for label, asked in filters.items() if asked}
        columns = {label: list(rows[label]) for label in LABELS}
        keep = [i for i in range(len(rows)) if all(columns[label][i] in ids for label, ids in wanted.items())]
        if not keep:
            chosen = ", ".join(f"{label}s={filters[label]}" for label in wanted)
            raise UserError(f"{spec.label}: no painting matches {chosen}")
        rows = rows.select(keep) if len(keep) < len(rows) else rows
        captions = [
            self.options.caption.format(**{label: readable(names[label][columns[label][i]]) for label in LABELS})
            for i in keep
        ]
        return rows.add_column(CAPTION_COLUMN, captions)

    def columns(self, features: datasets.Features, spec: SourceSpec) -> ColumnMap:
        """Image: the Image column; caption: the one :meth:`prepare` wrote."""
        return ColumnMap(image=detect_image_column(features, dataset=spec.label), caption=CAPTION_COLUMN)


def _label_names(features: Any, label: str, spec: SourceSpec) -> list[str]:
    """The class names of column ``label``; a missing or non-ClassLabel column is a UserError."""
    feature = features.get(label)
    if feature is None or type(feature).__name__ != "ClassLabel":
        found = "missing" if feature is None else f"a {type(feature).__name__}"
        raise UserError(
            f"{spec.label}: column {label!r} is {found}, expected class labels as in {HUB_ID} "
            f"(columns: {', '.join(features)})"
        )
    return list(feature.names)


def _label_ids(names: list[str], requested: list[str], label: str, spec: SourceSpec) -> set[int]:
    """The ids of the ``requested`` label names; an unknown one is a UserError listing the closest names."""
    by_key = {normalize(name): index for index, name in enumerate(names)}
    ids = set()
    for name in requested:
        if normalize(name) not in by_key:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5) or names[:3]
            raise UserError(
                f"{spec.label}: data.options.{label}s: no {label} {name!r} "
                f"(closest: {', '.join(close)}; {len(names)} {label}s in all)"
            )
        ids.add(by_key[normalize(name)])
    return ids
