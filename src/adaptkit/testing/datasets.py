"""Small local copies of the reference datasets, for tests (adaptkit's and plugins').

Each ``write_*`` function writes a few rows with tiny images in exactly the columns, feature
types and image modes of a reference Hub dataset, as parquet in the Hub's layout
(``<root>/data/train-00000-of-00001.parquet``, or one folder per config), and returns a
:class:`LocalDataset` saying where it is and what it holds. Point an adapter at it with
``[data.options] source = "<path>"``::

    from adaptkit.testing.datasets import write_pokemon
    local = write_pokemon(tmp_path / "pokemon")
    adapter = PokemonAdapter(PokemonAdapter.Options(source=str(local.path)))

:func:`write_hostile_images` and :func:`write_hostile_dataset` write broken and unusual images.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

PARQUET_NAME = "{split}-00000-of-00001.parquet"
#: Image and caption columns of each Hub copy of the Simpsons dataset.
SIMPSONS_COLUMNS: dict[str, tuple[str, str]] = {
    "jinmel/simpsons-blip-captions-pil": ("image", "text"),
    "skiracer/simpsons_blip_captions": ("image", "text"),
    "Norod78/simpsons-blip-captions": ("image", "text"),
}


@dataclass(frozen=True)
class LocalDataset:
    """A dataset written to disk: ``path`` (use it as ``source``), row count, and the text columns' values."""

    path: Path
    rows: int
    text: dict[str, list[Any]] = field(default_factory=dict)


@contextmanager
def isolated_datasets(cache: Path) -> Iterator[Path]:
    """Within the block, ``datasets`` caches under ``cache`` (not ``~/.cache``) and never calls the Hub."""
    from datasets import config

    previous = config.HF_DATASETS_CACHE, config.HF_HUB_OFFLINE
    config.HF_DATASETS_CACHE, config.HF_HUB_OFFLINE = cache, True
    try:
        yield cache
    finally:
        config.HF_DATASETS_CACHE, config.HF_HUB_OFFLINE = previous


# --------------------------------------------------------------------------- images


def pattern_image(index: int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Image.Image:
    """A deterministic image, different for every ``index``: gradients plus an index-dependent tint."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    tint = np.full((height, width), (index * 37) % 256, dtype=np.float32)
    rgb = Image.fromarray(np.stack([x, y, tint], axis=-1).astype(np.uint8))
    return rgb if mode == "RGB" else rgb.convert(mode)


def encode(image: Image.Image, format: str = "PNG") -> bytes:
    """Encode ``image`` in ``format`` (PNG, JPEG, TIFF, ...)."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def image_cell(data: bytes) -> dict[str, Any]:
    """An ``Image`` feature cell holding encoded bytes."""
    return {"bytes": data, "path": None}


# --------------------------------------------------------------------------- parquet


def write_parquet(path: Path, columns: Mapping[str, list[Any]], features: Mapping[str, Any]) -> Path:
    """Write ``columns`` with ``features`` (a ``datasets.Features``-like mapping) to the parquet file ``path``."""
    from datasets import Dataset, Features
    from datasets.utils import logging as datasets_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    quiet = datasets_logging.is_progress_bar_enabled()
    if quiet:
        datasets_logging.disable_progress_bar()
    try:
        Dataset.from_dict(dict(columns), features=Features(dict(features))).to_parquet(str(path))
    finally:
        if quiet:
            datasets_logging.enable_progress_bar()
    return path


def _image_text_features(image_column: str, *text_columns: str) -> dict[str, Any]:
    from datasets import Image as ImageFeature
    from datasets import Value

    return {image_column: ImageFeature(), **{name: Value("string") for name in text_columns}}


def _write_image_text(root: Path, rows: int, image_column: str, text: dict[str, list[Any]]) -> LocalDataset:
    images = [image_cell(encode(pattern_image(i))) for i in range(rows)]
    write_parquet(
        root / "data" / PARQUET_NAME.format(split="train"),
        {image_column: images, **text},
        _image_text_features(image_column, *text),
    )
    return LocalDataset(root, rows, text)


def write_pokemon(root: Path, rows: int = 8, *, en_column: str = "en_text", zh_column: str = "zh_text") -> LocalDataset:
    """svjack/pokemon-blip-captions-en-zh: ``image`` (RGB PNG), ``en_text``, ``zh_text``.

    Other copies name the caption columns ``text`` / ``text_zh``: pass ``en_column``/``zh_column``.
    """
    text = {
        en_column: [f"a cartoon pokemon number {i}" for i in range(rows)],
        zh_column: [f"卡通宝可梦 {i} 号" for i in range(rows)],
    }
    return _write_image_text(root, rows, "image", text)


def write_naruto(root: Path, rows: int = 6) -> LocalDataset:
    """lambdalabs/naruto-blip-captions: ``image`` (RGB PNG), ``text``."""
    text = {"text": [f"a ninja with spiky hair, frame {i}" for i in range(rows)]}
    return _write_image_text(root, rows, "image", text)


def write_simpsons(
    root: Path, rows: int = 6, *, variant: str = "jinmel/simpsons-blip-captions-pil", caption_column: str | None = None
) -> LocalDataset:
    """One Hub copy of the Simpsons BLIP captions (see :data:`SIMPSONS_COLUMNS`).

    ``caption_column`` renames the caption column (to test column detection).
    """
    image_column, default_caption = SIMPSONS_COLUMNS[variant]
    text = {caption_column or default_caption: [f"a yellow cartoon family on a couch, scene {i}" for i in range(rows)]}
    return _write_image_text(root, rows, image_column, text)


def newyorker_features() -> dict[str, Any]:
    """The features of jmhessel/newyorker_caption_contest's ``explanation`` configs."""
    from datasets import Image as ImageFeature
    from datasets import List, Value

    string = Value("string")
    return {
        "image": ImageFeature(),
        "contest_number": Value("int32"),
        "image_location": string,
        "image_description": string,
        "image_uncanny_description": string,
        "entities": List(string),
        "questions": List(string),
        "caption_choices": string,
        "from_description": string,
        "label": string,
        "n_tokens_label": Value("int32"),
        "instance_id": string,
    }


def write_newyorker(
    root: Path, contests: int = 4, rows_per_contest: int = 3, *, config: str = "explanation", first_contest: int = 500
) -> LocalDataset:
    """jmhessel/newyorker_caption_contest, ``config`` folder: grayscale JPEG cartoons of varied sizes.

    Each contest has ``rows_per_contest`` rows (one per caption) sharing its image and descriptions.
    Also writes a ``validation`` split with two other contests. ``text`` holds the train split's columns.
    """

    def rows_for(numbers: list[int]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {name: [] for name in newyorker_features()}
        for n in numbers:
            size = (24 + 8 * (n % 5), 40 - 4 * (n % 4))  # varied sizes, both orientations
            jpeg = encode(pattern_image(n, size, mode="L"), "JPEG")
            for r in range(rows_per_contest):
                values = {
                    "image": image_cell(jpeg),
                    "contest_number": n,
                    "image_location": f"an office, contest {n}",
                    "image_description": f"A man at a desk talks to a penguin, cartoon {n}.",
                    "image_uncanny_description": f"The penguin wears a tie, cartoon {n}.",
                    "entities": [f"https://en.wikipedia.org/wiki/Penguin_{n}"],
                    "questions": [f"Why is there a penguin in cartoon {n}?"],
                    "caption_choices": f"caption {r} for cartoon {n}",
                    "from_description": f"scene: office, cartoon {n}, caption {r}",
                    "label": f"The joke of caption {r} is about cartoon {n}.",
                    "n_tokens_label": 10 + r,
                    "instance_id": f"{n:05d}{r:03d}",
                }
                for name, value in values.items():
                    columns[name].append(value)
        return columns

    train_numbers = list(range(first_contest, first_contest + contests))
    splits = {"train": train_numbers, "validation": [first_contest + contests, first_contest + contests + 1]}
    train: dict[str, list[Any]] = {}
    for split, numbers in splits.items():
        columns = rows_for(numbers)
        write_parquet(root / config / PARQUET_NAME.format(split=split), columns, newyorker_features())
        if split == "train":
            train = columns
    text = {name: values for name, values in train.items() if name != "image"}
    return LocalDataset(root, contests * rows_per_contest, text)


# --------------------------------------------------------------------------- imagefolder


def write_imagefolder(
    root: Path, rows: int = 6, *, captions: Literal["jsonl", "csv", "txt"] = "jsonl", caption_column: str = "text"
) -> LocalDataset:
    """A Hugging Face imagefolder: PNGs with ``metadata.jsonl`` / ``metadata.csv`` (``file_name`` +
    ``caption_column``), or with ``.txt`` caption sidecars (``captions="txt"``)."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"image_{i:03d}.png" for i in range(rows)]
    texts = [f"a watercolour landscape, plate {i}" for i in range(rows)]
    for i, name in enumerate(names):
        pattern_image(i).save(root / name)
        if captions == "txt":
            (root / name).with_suffix(".txt").write_text(texts[i] + "\n", encoding="utf-8")
    if captions == "jsonl":
        lines = (json.dumps({"file_name": n, caption_column: t}) for n, t in zip(names, texts, strict=True))
        (root / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif captions == "csv":
        lines = [f"file_name,{caption_column}", *(f'{n},"{t}"' for n, t in zip(names, texts, strict=True))]
        (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return LocalDataset(root, rows, {caption_column: texts})


# --------------------------------------------------------------------------- hostile images


def unusual_images() -> dict[str, bytes]:
    """Decodable images in modes other than RGB: palette with transparency, CMYK, 16-bit, LA, RGBA, float, 32-bit."""
    palette = Image.new("P", (20, 16), 1)  # left half transparent (index 0), right half blue
    palette.paste(0, (0, 0, 10, 16))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 0
    return {
        "palette.png": encode(palette),
        "cmyk.jpg": encode(Image.new("CMYK", (20, 16), (0, 255, 255, 0)), "JPEG"),
        "gray16.png": encode(Image.fromarray(np.full((16, 20), 32896, dtype=np.uint16))),
        "la.png": encode(pattern_image(3, (20, 16)).convert("LA")),
        "rgba.png": encode(pattern_image(4, (20, 16)).convert("RGBA")),
        "float.tiff": encode(Image.fromarray(np.full((16, 20), 0.5, dtype=np.float32)), "TIFF"),
        "int32.tiff": encode(Image.fromarray(np.full((16, 20), 1000, dtype=np.int32)), "TIFF"),
    }


def broken_images() -> dict[str, bytes]:
    """Images that cannot be decoded: rejected by the header check, except ``truncated.jpg`` (fails on decode)."""
    png = encode(pattern_image(7, (64, 64)))
    jpeg = encode(pattern_image(8, (64, 64)), "JPEG")
    return {
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"this is not an image" * 4,
        "truncated.png": png[: len(png) // 2],
        "empty.png": b"",
        "truncated.jpg": jpeg[:-100],  # header intact: passes the check, fails when decoded
    }


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid signature, IHDR (with correct CRC) claiming ``width`` × ``height`` RGB pixels,
    and IEND, but no IDAT chunk: no pixel data. Large sizes make a decompression bomb's header; small
    ones make PIL's ``verify()`` raise IndexError and ``load()`` OSError."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def write_hostile_images(folder: Path) -> dict[str, Path]:
    """Write :func:`unusual_images` and :func:`broken_images` as files (with ``.txt`` captions); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in {**unusual_images(), **broken_images()}.items():
        path = folder / name
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(f"an unusual image: {name}", encoding="utf-8")
        paths[name] = path
    return paths


def write_hostile_dataset(root: Path) -> LocalDataset:
    """A parquet ``image`` + ``text`` dataset mixing unusual, broken and caption-less rows.

    Usable after loading: the 7 :func:`unusual_images` plus ``truncated.jpg`` (which only fails
    when decoded). Skipped when loading: 3 broken images and 3 rows whose caption is None, "" or blank.
    """
    images = {**unusual_images(), **broken_images()}
    cells = [image_cell(data) for data in images.values()]
    text: list[str | None] = [f"an unusual image: {name}" for name in images]
    for caption in (None, "", "   "):
        cells.append(image_cell(encode(pattern_image(len(cells)))))
        text.append(caption)
    path = root / "data" / PARQUET_NAME.format(split="train")
    write_parquet(path, {"image": cells, "text": text}, _image_text_features("image", "text"))
    return LocalDataset(root, len(cells), {"text": text})
