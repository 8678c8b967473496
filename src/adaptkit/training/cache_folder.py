"""The latent cache on disk: where it lives by default, how large it may grow, what it holds.

A recipe that leaves ``[data] cache_dir`` unset caches latents in the user cache folder, found
the way Hugging Face finds ``HF_HOME``: ``$ADAPTKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/adaptkit``,
else ``~/.cache/adaptkit``; the entries go under its ``latents/``. Every latent folder is kept
under a size limit (``$ADAPTKIT_CACHE_MAX_GB``, default :data:`DEFAULT_LIMIT_GB`): after a run's
fill the least recently used entries (a read refreshes an entry's time) are removed, never one
the run itself uses.

Only files shaped like entries (``<2 hex>/<40 hex>.safetensors`` and their ``.tmp…`` leftovers)
are counted, evicted or cleared, so nothing else in a folder is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from adaptkit.errors import UserError

#: The environment variable naming the user cache folder.
CACHE_DIR_ENV = "ADAPTKIT_CACHE_DIR"
#: The environment variable giving each latent folder's size limit, in gigabytes (10⁹ bytes).
LIMIT_ENV = "ADAPTKIT_CACHE_MAX_GB"
DEFAULT_LIMIT_GB = 20.0
#: The latents' subfolder of the user cache folder.
LATENTS = "latents"

_ENTRY = re.compile(r"[0-9a-f]{40}\.safetensors")
_TEMPORARY = re.compile(r"[0-9a-f]{40}\.safetensors\.tmp[0-9a-z-]+")
_SHARD = re.compile(r"[0-9a-f]{2}")


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$ADAPTKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/adaptkit``, else ``~/.cache/adaptkit`` (empty = unset)."""
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV]).expanduser()
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "adaptkit"
    return Path.home() / ".cache" / "adaptkit"


def default_latent_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where latents go when ``[data] cache_dir`` is unset: the user cache folder's ``latents/``."""
    return user_cache_dir(environ) / LATENTS


def cache_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The size limit of a latent folder in bytes, from ``$ADAPTKIT_CACHE_MAX_GB`` (a positive number)."""
    text = environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_GB * 1e9)
    try:
        gigabytes = float(text)
    except ValueError:
        gigabytes = float("nan")
    if not gigabytes > 0 or gigabytes == float("inf"):
        raise UserError(
            f"{LIMIT_ENV} = {text!r}: not a size in gigabytes; use a positive number such as {DEFAULT_LIMIT_GB:g}"
        )
    return int(gigabytes * 1e9)


def entry_files(directory: Path, temporary: bool = False) -> Iterator[Path]:
    """The entry files under ``directory`` (with ``temporary``: also writes under way or torn); nothing else."""
    if not directory.is_dir():
        return
    for shard in directory.iterdir():
        if not (_SHARD.fullmatch(shard.name) and shard.is_dir()):
            continue
        for path in shard.iterdir():
            shaped = _ENTRY.fullmatch(path.name) or (temporary and _TEMPORARY.fullmatch(path.name))
            if shaped and path.name.startswith(shard.name) and path.is_file():
                yield path


@dataclass(frozen=True)
class Usage:
    """What a latent folder holds: its entry count and their total size in bytes."""

    entries: int
    size: int


def _stat_entries(directory: Path, temporary: bool = False) -> list[tuple[Path, os.stat_result]]:
    """Each entry with its ``stat`` (an entry removed meanwhile by another process is left out)."""
    found = []
    for path in entry_files(directory, temporary):
        with contextlib.suppress(FileNotFoundError):
            found.append((path, path.stat()))
    return found


def usage(directory: Path) -> Usage:
    """The entries under ``directory`` and their total size."""
    entries = _stat_entries(directory)
    return Usage(len(entries), sum(stat.st_size for _, stat in entries))


@dataclass(frozen=True)
class Eviction:
    """What :func:`evict` did: entries and bytes removed, and the size left (over ``limit`` only
    when the entries it had to keep exceed it)."""

    removed: int
    freed: int
    left: int
    limit: int


def evict(directory: Path, limit: int, keep: Collection[Path] = ()) -> Eviction:
    """Remove the least recently used entries of ``directory`` (oldest modification time first)
    until it holds at most ``limit`` bytes, never one of ``keep``."""
    entries = _stat_entries(directory)
    total = sum(stat.st_size for _, stat in entries)
    kept = set(keep)
    removed = freed = 0
    for path, stat in sorted(entries, key=lambda entry: entry[1].st_mtime_ns):
        if total <= limit:
            break
        if path in kept:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        total -= stat.st_size
        removed, freed = removed + 1, freed + stat.st_size
    return Eviction(removed, freed, total, limit)


def refuse_unsafe(directory: Path) -> None:
    """Refuse to clear a folder that is the file system's root, the home folder or one above it."""
    resolved = directory.expanduser().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        raise UserError(
            f"cache folder {directory}: refusing to clear the root or home folder; "
            f"point {CACHE_DIR_ENV} (or --dir) at a folder of its own, such as ~/.cache/adaptkit"
        )


def clear(directory: Path) -> Usage:
    """Delete every entry (and torn write) under ``directory``, then its emptied shard folders;
    returns what went."""
    refuse_unsafe(directory)
    entries = _stat_entries(directory, temporary=True)
    for path, _ in entries:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for path in {path.parent for path, _ in entries}:
        with contextlib.suppress(OSError):  # not empty (another process wrote meanwhile) or gone
            path.rmdir()
    return Usage(len(entries), sum(stat.st_size for _, stat in entries))


def format_size(size: float) -> str:
    """``size`` bytes as ``"3.1 MB"`` (decimal units, as the limit is given)."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"
