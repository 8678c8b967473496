"""Write any adapter's examples as a Hugging Face imagefolder (PNG files + ``metadata.jsonl``).

The result loads with ``load_dataset("imagefolder", data_dir=...)`` and with adaptkit's own
``imagefolder`` adapter, so a procedural or remote dataset can be frozen, shared or edited by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from adaptkit.component import StyleDataset
from adaptkit.errors import UserError

METADATA = "metadata.jsonl"


def _file_name(index: int, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", key)[:60].strip("-.") or "image"
    return f"{index:06d}-{safe}.png"


def export_imagefolder(dataset: StyleDataset, out_dir: Path, limit: int | None = None) -> int:
    """Write up to ``limit`` examples into the new folder ``out_dir``; return how many.

    Each row of ``metadata.jsonl`` has ``file_name``, ``text`` (the first caption), ``captions``
    (all of them) and ``key``. The folder is written under a temporary name and renamed at the
    end, so an interrupted export leaves nothing half-written; an existing ``out_dir`` is refused.
    """
    if out_dir.exists():
        raise UserError(f"{out_dir}: already exists; choose a new folder (nothing was written)")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with (tmp / METADATA).open("w", encoding="utf-8") as metadata:
            for index in range(count):
                example = dataset[index]
                name = _file_name(index, example.key)
                example.image.convert("RGB").save(tmp / name, format="PNG")
                row = {"file_name": name, "text": example.captions[0], "captions": example.captions, "key": example.key}
                metadata.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count
