"""The latent cache's entries on disk: one safetensors file per posterior, read back or recomputed,
written atomically. Where the folder lives and how large it may grow: :mod:`adaptkit.training.cache_folder`."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import torch

from adaptkit.errors import IOFailure
from adaptkit.run import follow_umask
from adaptkit.training.cache_folder import CACHE_DIR_ENV


class CacheWriteError(IOFailure):
    """A latent cache entry could not be written (a full disk, a read-only or vanished folder).

    No partial entry is left behind; one line, exit status 74 (:class:`~adaptkit.errors.IOFailure`).
    """


class DiskStore:
    """Posteriors as ``<dir>/<key[:2]>/<key>.safetensors``, written atomically (temporary file, then rename).

    An entry that cannot be read back (truncated, garbage, not a posterior) counts as absent:
    :meth:`get` returns None for it and records its path in :attr:`corrupt`, so it is
    recomputed and overwritten. A read refreshes the entry's modification time (what
    :func:`~adaptkit.training.cache_folder.evict` orders by); :attr:`used` holds every entry this
    store read or wrote.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.corrupt: set[Path] = set()
        self.used: set[Path] = set()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The entry under ``key``; None if there is none or it is corrupt (then its path joins :attr:`corrupt`)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError):  # a torn or foreign file, or one we may not read
            self.corrupt.add(path)
            return None
        mean, std = tensors.get("mean"), tensors.get("std")
        if mean is None or set(tensors) - {"mean", "std"} or (std is not None and std.shape != mean.shape):
            self.corrupt.add(path)
            return None
        with contextlib.suppress(OSError):  # a read-only shared cache still serves its entries
            os.utime(path)
        self.used.add(path)
        return mean, std

    def put(self, key: str, mean: torch.Tensor, std: torch.Tensor | None) -> None:
        """Write (or overwrite) an entry; a failed write raises :class:`CacheWriteError` and leaves no file behind."""
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        path = self.path(key)
        tensors = {"mean": mean.contiguous()} | ({"std": std.contiguous()} if std is not None else {})
        temporary = path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")  # unique per writer
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(temporary))
            follow_umask(temporary)
            os.replace(temporary, path)
            self.used.add(path)
        except (OSError, SafetensorError) as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CacheWriteError(
                f"data.cache_dir: cannot write the latent cache entry {path} ({cause}); free space there, "
                f'point data.cache_dir (or ${CACHE_DIR_ENV}) at a writable folder, or set data.cache_dir = "" '
                "to cache in memory"
            ) from None
