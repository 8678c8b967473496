"""The cache's entries on disk: one safetensors file per posterior (or per caption's text-encoder
outputs, :mod:`adaptkit.training.text_cache`), read back or recomputed, written atomically. Where the
folder lives and how large it may grow: :mod:`adaptkit.training.cache_folder`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import torch

from adaptkit.errors import IOFailure
from adaptkit.run import follow_umask
from adaptkit.training.cache_folder import CACHE_DIR_ENV


class CacheWriteError(IOFailure):
    """A cache entry could not be written (a full disk, a read-only or vanished folder).

    No partial entry is left behind; one line, exit status 74 (:class:`~adaptkit.errors.IOFailure`).
    """


class DiskStore:
    """Entries (named tensors: a posterior's ``mean``/``std``, or a caption's conditioning) as
    ``<dir>/<key[:2]>/<key>.safetensors``, written atomically (temporary file, then rename).

    An entry that cannot be read back (truncated, garbage, not what the reader expects) counts as absent:
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
        """The posterior under ``key``; None if there is none or it is corrupt (then its path joins :attr:`corrupt`)."""
        tensors = self.get_tensors(key, lambda t: "mean" in t and not set(t) - {"mean", "std"})
        if tensors is None:
            return None
        mean, std = tensors["mean"], tensors.get("std")
        if std is not None and std.shape != mean.shape:
            self.corrupt.add(self.path(key))
            return None
        return mean, std

    def put(self, key: str, mean: torch.Tensor, std: torch.Tensor | None) -> None:
        """Write (or overwrite) a posterior; a failed write raises :class:`CacheWriteError`, leaving no file."""
        self.put_tensors(key, {"mean": mean} | ({"std": std} if std is not None else {}), "latent")

    def get_tensors(self, key: str, valid: Callable[[dict[str, torch.Tensor]], bool]) -> dict[str, torch.Tensor] | None:
        """The named tensors under ``key`` if ``valid`` accepts them; None if there are none or the file is
        corrupt or not what ``valid`` expects (then its path joins :attr:`corrupt`)."""
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
        if not valid(tensors):
            self.corrupt.add(path)
            return None
        with contextlib.suppress(OSError):  # a read-only shared cache still serves its entries
            os.utime(path)
        self.used.add(path)
        return tensors

    def put_tensors(self, key: str, tensors: dict[str, torch.Tensor], kind: str) -> None:
        """Write (or overwrite) the named tensors under ``key`` atomically; a failed write raises
        :class:`CacheWriteError` naming the ``kind`` of entry, and leaves no file behind."""
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        path = self.path(key)
        tensors = {name: tensor.contiguous() for name, tensor in tensors.items()}
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
                f"data.cache_dir: cannot write the {kind} cache entry {path} ({cause}); free space there, "
                f'point data.cache_dir (or ${CACHE_DIR_ENV}) at a writable folder, or set data.cache_dir = "" '
                "to cache in memory"
            ) from None
