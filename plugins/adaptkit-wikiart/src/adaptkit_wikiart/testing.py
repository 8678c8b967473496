"""A small local copy of ``huggan/wikiart``'s schema, for tests (this plugin's and its users')."""

from __future__ import annotations

from pathlib import Path

#: A few of huggan/wikiart's real label names (the Hub dataset has 129 artists, 11 genres, 27 styles).
ARTISTS = ["Unknown Artist", "claude-monet", "vincent-van-gogh", "katsushika-hokusai"]
GENRES = ["landscape", "portrait", "Unknown Genre"]
STYLES = ["Impressionism", "Post_Impressionism", "Ukiyo_e"]
#: (artist, genre, style) ids of the rows :func:`write_wikiart` writes by default.
ROWS = [(1, 0, 0), (1, 1, 0), (2, 0, 1), (2, 1, 1), (3, 0, 2), (0, 2, 0)]


def write_wikiart(root: Path, rows: list[tuple[int, int, int]] = ROWS) -> Path:
    """Write ``rows`` as parquet in the Hub layout under ``root``: image (JPEG), artist, genre, style (class labels).

    Returns ``root``; use it as ``[data.options] source``.
    """
    from adaptkit.testing.datasets import encode, image_cell, pattern_image, write_parquet
    from datasets import ClassLabel
    from datasets import Image as ImageFeature

    columns = {
        "image": [image_cell(encode(pattern_image(i, (40, 30)), "JPEG")) for i in range(len(rows))],
        "artist": [row[0] for row in rows],
        "genre": [row[1] for row in rows],
        "style": [row[2] for row in rows],
    }
    features = {
        "image": ImageFeature(),
        "artist": ClassLabel(names=ARTISTS),
        "genre": ClassLabel(names=GENRES),
        "style": ClassLabel(names=STYLES),
    }
    write_parquet(root / "data" / "train-00000-of-00001.parquet", columns, features)
    return root
