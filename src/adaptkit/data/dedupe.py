"""Near-duplicate images: perceptual hashes (``imagehash``'s pHash) grouped by Hamming distance.

Two examples are near-duplicates when their 64-bit pHashes differ in at most ``distance`` bits (pHash
is stable under re-encoding, resizing and small edits); groups are the connected sets of such pairs.
Every group keeps its first example; the others are what ``adaptkit data dedupe --exclude-file``
lists and ``[data] exclude_keys`` leaves out of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.component import StyleDataset


@dataclass(frozen=True)
class DuplicateGroup:
    """Example keys whose images are near-duplicates; ``keys[0]`` is the one kept."""

    keys: tuple[str, ...]

    @property
    def dropped(self) -> tuple[str, ...]:
        return self.keys[1:]


def perceptual_hashes(dataset: "StyleDataset") -> tuple[list[str], np.ndarray]:
    """Every example's key and 64-bit pHash (as 64 booleans)."""
    try:
        import imagehash
    except ImportError as exc:
        raise UserError(
            "adaptkit data dedupe needs imagehash, which is not installed; pip install 'adaptkit[data]'"
        ) from exc
    keys, bits = [], []
    for index in range(len(dataset)):
        example = dataset[index]
        keys.append(example.key)
        bits.append(imagehash.phash(example.image.convert("RGB")).hash.flatten())
    return keys, np.array(bits, dtype=bool).reshape(len(keys), -1)


def near_duplicate_groups(keys: list[str], bits: np.ndarray, distance: int) -> list[DuplicateGroup]:
    """Groups of two or more keys linked by pairs within ``distance`` bits, in dataset order."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(keys)):
        close = np.flatnonzero((bits[i + 1 :] != bits[i]).sum(axis=1) <= distance) + i + 1
        for j in close:
            parent[root(int(j))] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(len(keys)):
        members.setdefault(root(i), []).append(i)
    return [DuplicateGroup(tuple(keys[i] for i in group)) for group in members.values() if len(group) > 1]


def write_exclude_file(path: Path, groups: list[DuplicateGroup]) -> int:
    """The dropped keys of ``groups``, one per line, for ``[data] exclude_keys``; how many."""
    dropped = [key for group in groups for key in group.dropped]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}\n" for key in dropped), encoding="utf-8")
    return len(dropped)


def read_exclude_file(path: Path) -> set[str]:
    """The keys listed in ``path`` (one per line; blank lines and ``#`` comments ignored)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"data.exclude_keys: {path}: cannot read it ({exc.strerror or exc})") from exc
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
