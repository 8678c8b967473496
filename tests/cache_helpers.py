"""Files shaped like latent-cache entries, shared by the cache folder and ``adaptkit cache`` tests."""

from __future__ import annotations

import os
from pathlib import Path


def write_entry(folder: Path, number: int, size: int, mtime: int) -> Path:
    """A file shaped like a cache entry: ``<2 hex>/<40 hex>.safetensors`` of ``size`` bytes, modified at ``mtime``."""
    key = f"{number:040x}"
    path = folder / key[:2] / f"{key}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path
