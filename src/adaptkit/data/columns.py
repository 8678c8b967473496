"""Choosing columns from a dataset's ``features``, with errors that list what exists.

Reference datasets disagree on column names (``en_text`` vs ``text``, ``image`` vs ``img``),
so adapters name candidates and these helpers pick the first one present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptkit.errors import UserError

#: Caption column names tried, in order, when an adapter does not say which one.
CAPTION_CANDIDATES: tuple[str, ...] = ("text", "caption", "captions", "blip_caption", "prompt", "description")
#: Image column names tried when no column has the ``Image`` feature type.
IMAGE_CANDIDATES: tuple[str, ...] = ("image", "img", "picture", "jpg", "png")

TEXT_DTYPES = frozenset({"string", "large_string"})


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold the image, the caption(s) and (optionally) a stable key.

    Rows that share a ``key`` value are merged into one example (their distinct captions are
    pooled), e.g. one New Yorker cartoon per ``contest_number``. Without a key column, the
    key is a hash of the image bytes, so identical images are merged too.
    """

    image: str
    caption: str
    key: str | None = None


def is_image_feature(feature: Any) -> bool:
    """True for a ``datasets.Image`` feature."""
    return type(feature).__name__ == "Image"


def is_text_feature(feature: Any) -> bool:
    """True for a string column or a list of strings."""
    if type(feature).__name__ == "Value":
        return feature.dtype in TEXT_DTYPES
    if isinstance(feature, (list, tuple)) and len(feature) == 1:
        return is_text_feature(feature[0])
    inner = getattr(feature, "feature", None)
    return inner is not None and type(feature).__name__ in ("List", "LargeList", "Sequence") and is_text_feature(inner)


def is_image_like(feature: Any) -> bool:
    """True for an ``Image`` feature, encoded bytes, a file path string, or a ``{bytes, path}`` struct."""
    if is_image_feature(feature):
        return True
    if type(feature).__name__ == "Value":
        return feature.dtype in TEXT_DTYPES | {"binary", "large_binary"}
    return isinstance(feature, Mapping) and ("bytes" in feature or "path" in feature)


def _names(features: Mapping[str, Any]) -> str:
    return ", ".join(features) or "none"


def pick_column(
    features: Mapping[str, Any], candidates: Sequence[str], *, dataset: str, role: str, option: str | None = None
) -> str:
    """The first of ``candidates`` that is a column; else a UserError naming them and the columns that exist.

    ``role`` is ``"image"`` or ``"caption"`` (the caption must be text); ``option`` names the
    adapter option a user can set to choose another column.
    """
    present = [name for name in candidates if name in features]
    for name in present:
        if _fits(features[name], role):
            return name
    if present:  # there, but not text: say so
        check_column(features, present[0], dataset=dataset, role=role)
    tried = ", ".join(repr(c) for c in candidates)
    hint = f" (set [data.options] {option})" if option else ""
    raise UserError(f"{dataset}: no {role} column {tried}{hint}; columns: {_names(features)}")


def check_column(features: Mapping[str, Any], name: str, *, dataset: str, role: str) -> None:
    """Raise a UserError unless ``name`` is a column fit for ``role`` (``"caption"`` must be text).

    The message lists the columns that could play ``role`` instead or, when none could, says the
    dataset has no such column and lists every column with its type.
    """
    if name not in features:
        raise UserError(f"{dataset}: no {role} column {name!r}; columns: {_names(features)}")
    if not _fits(features[name], role):
        kind = "text" if role == "caption" else "images"
        problem = f"{dataset}: {role} column {name!r} does not hold {kind} ({features[name]})"
        fitting = [c for c, f in features.items() if c != name and _holds(f, role)]
        if fitting:
            raise UserError(f"{problem}; {role} columns: {', '.join(fitting)}")
        raise UserError(f"{problem}; the dataset has no {role} column; its columns: {_typed_names(features)}")


def _holds(feature: Any, role: str) -> bool:
    """Whether a column certainly holds ``role``'s data: for images an Image, bytes or {bytes, path}
    column (a string column fits :func:`_fits` as file paths, but is not listed as an image column)."""
    if role == "image":
        return is_image_like(feature) and not (type(feature).__name__ == "Value" and feature.dtype in TEXT_DTYPES)
    return _fits(feature, role)


def _typed_names(features: Mapping[str, Any]) -> str:
    """``image (int64), text (string)``: every column with its type."""
    return ", ".join(f"{name} ({_type_name(feature)})" for name, feature in features.items()) or "none"


def _type_name(feature: Any) -> str:
    if type(feature).__name__ == "Value":
        return str(feature.dtype)
    if is_text_feature(feature):
        return "list of strings"
    return type(feature).__name__


def _fits(feature: Any, role: str) -> bool:
    """Whether a column of this feature type can play ``role`` (any column can be a key)."""
    if role == "caption":
        return is_text_feature(feature)
    if role == "image":
        return is_image_like(feature)
    return True


def detect_image_column(features: Mapping[str, Any], *, dataset: str, option: str | None = None) -> str:
    """The first column with the ``Image`` feature type, else the first of :data:`IMAGE_CANDIDATES`."""
    for name, feature in features.items():
        if is_image_feature(feature):
            return name
    return pick_column(features, IMAGE_CANDIDATES, dataset=dataset, role="image", option=option)


def detect_caption_column(features: Mapping[str, Any], *, dataset: str, option: str | None = None) -> str:
    """The first of :data:`CAPTION_CANDIDATES` that is a text column."""
    return pick_column(features, CAPTION_CANDIDATES, dataset=dataset, role="caption", option=option)


def named_or_detected(
    features: Mapping[str, Any], image_column: str | None, caption_column: str | None, *, dataset: str
) -> tuple[str, str]:
    """(image, caption) columns: the ones named by the ``image_column`` / ``caption_column`` options,
    else detected ones; UserError naming the option and the columns that exist."""
    image = (
        pick_column(features, (image_column,), dataset=dataset, role="image", option="image_column")
        if image_column
        else detect_image_column(features, dataset=dataset, option="image_column")
    )
    caption = (
        pick_column(features, (caption_column,), dataset=dataset, role="caption", option="caption_column")
        if caption_column
        else detect_caption_column(features, dataset=dataset, option="caption_column")
    )
    return image, caption
