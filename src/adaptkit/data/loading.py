"""Loading: one ``datasets.load_dataset`` call for a Hub id or a local copy, and ``max_examples``.

``source`` may be a Hub id (``owner/name``), a local folder (a Hub snapshot, a folder of
parquet files, an imagefolder), a single data file (``.parquet``, ``.csv``, ``.json``,
``.jsonl``) or a glob of them. Every failure becomes a one-line :class:`~adaptkit.errors.UserError`
that names the dataset and says what to do.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from adaptkit.component import DatasetAdapter, Example, StyleDataset
from adaptkit.errors import UserError, first_line

if TYPE_CHECKING:
    import datasets

T = TypeVar("T")

#: Builders for single data files, by suffix.
FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}
#: Seconds the one request that checks whether the Hub answers may take.
HUB_CHECK_TIMEOUT_S = 5.0

logger = logging.getLogger("adaptkit.data")


@dataclass(frozen=True)
class SourceSpec:
    """What to load.

    ``dataset`` names the adapter in messages; ``source`` is a Hub id or a local path;
    ``config`` a Hub config (subset) name; ``builder`` forces a ``datasets`` builder for a
    local folder (e.g. ``"imagefolder"``).
    """

    dataset: str
    source: str
    split: str = "train"
    config: str | None = None
    builder: str | None = None
    trust_remote_code: bool = False

    @property
    def label(self) -> str:
        """``dataset 'pokemon' (svjack/pokemon-blip-captions-en-zh)`` for messages."""
        return f"dataset '{self.dataset}' ({self.source})"


def _local_path(source: str) -> Path | None:
    """The local file or folder ``source`` names, or None when it is a Hub id."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    if any(char in source for char in "*?[") and glob.glob(str(path)):
        return path
    return None


def _looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", ".\\")) or Path(source).suffix.lower() in FILE_BUILDERS


def load_arguments(spec: SourceSpec) -> dict[str, Any]:
    """The ``datasets.load_dataset`` keyword arguments for ``spec`` (``path`` included)."""
    local = _local_path(spec.source)
    if local is None:
        if _looks_local(spec.source):
            raise UserError(f"{spec.label}: no such file or folder {spec.source!r}")
        arguments: dict[str, Any] = {"path": spec.source, "name": spec.config, "split": spec.split}
        if spec.trust_remote_code:
            arguments["trust_remote_code"] = True
        return arguments
    if local.is_dir():
        return _folder_arguments(spec, local)
    builder = FILE_BUILDERS.get(local.suffix.lower())
    if builder is None:
        raise UserError(
            f"{spec.label}: cannot read {local.name!r}; use a folder or a {', '.join(sorted(FILE_BUILDERS))} file"
        )
    # a single file (or glob) is the split that was asked for
    return {"path": builder, "data_files": {spec.split: str(local)}, "split": spec.split}


def _folder_arguments(spec: SourceSpec, folder: Path) -> dict[str, Any]:
    """A local folder: a builder's data_dir, one config's folder of a Hub snapshot, or a plain data folder."""
    if spec.builder is not None:
        arguments = {"path": spec.builder, "data_dir": str(folder), "split": spec.split}
        if spec.split == "train" and not _names_a_split(folder):
            # datasets 5.2 finds a data_dir's splits by globbing the whole tree once per split pattern
            # (66 globs: 110 s of a 121 s start on 100 000 images). A folder whose paths name no split
            # is all "train" by datasets' own default (DEFAULT_PATTERNS_ALL), so that pattern is given
            # directly and the tree is globbed once.
            arguments["data_files"] = {"train": "**"}
        return arguments
    if spec.config:
        if (folder / spec.config).is_dir():  # a Hub snapshot: one folder per config
            return {"path": str(folder / spec.config), "split": spec.split}
        if (folder / "README.md").is_file():  # configs declared in the dataset card
            return {"path": str(folder), "name": spec.config, "split": spec.split}
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if subfolders:  # other configs' folders: never load them in place of the one asked for
            raise UserError(
                f"{spec.label}: config '{spec.config}' not found: no folder {spec.config!r} in {spec.source} "
                f"(folders: {', '.join(subfolders)}); point source at the config's own folder or files"
            )
    return {"path": str(folder), "split": spec.split}


def _names_a_split(folder: Path) -> bool:
    """Whether any path under ``folder`` contains a word ``datasets`` reads as a split name (``train``,
    ``test``, ``validation``, ``eval`` …, as a substring: erring towards datasets' own detection)."""
    from datasets.data_files import SPLIT_KEYWORDS

    words = [word for keywords in SPLIT_KEYWORDS.values() for word in keywords]
    for root, folders, files in os.walk(folder):
        relative = os.path.relpath(root, folder).lower()
        names = [relative, *(name.lower() for name in folders), *(name.lower() for name in files)]
        if any(word in name for name in names for word in words):
            return True
    return False


def hub_offline() -> bool:
    """Whether offline mode is on: ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` read at call time, or the
    flag ``datasets`` / ``huggingface_hub`` read when imported."""
    import os

    import datasets
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    by_env = any((flag or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)
    return by_env or bool(datasets.config.HF_HUB_OFFLINE) or constants.is_offline_mode()


def hub_reachable(timeout: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) answers one request within ``timeout`` seconds, without retries.

    Any HTTP answer counts, whatever its status; it goes through ``huggingface_hub``'s own HTTP
    client, so proxies configured for it apply.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # noqa: BLE001 - DNS, refused, timeout, proxy or TLS failure: every way of getting no answer
        return False
    return True


@contextmanager
def offline_mode(enabled: bool) -> Iterator[None]:
    """Within the block, ``datasets`` and ``huggingface_hub`` behave as with ``HF_HUB_OFFLINE=1`` (if ``enabled``)."""
    if not enabled:
        yield
        return
    import datasets
    from huggingface_hub import constants

    previous = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = previous


def open_source(spec: SourceSpec) -> datasets.Dataset:
    """Load one split of ``spec`` with ``datasets.load_dataset``; raise a one-line UserError on failure.

    For a Hub id, one quick request first checks that the Hub answers; if it does not, the
    dataset is loaded as in offline mode (from the ``datasets`` cache, saying so in one line)
    instead of letting ``huggingface_hub`` retry for half a minute, a "Retrying in N s" line each time.
    """
    import datasets
    from datasets.exceptions import DatasetsError

    arguments = load_arguments(spec)
    unreachable = _local_path(spec.source) is None and not hub_offline() and not hub_reachable()
    try:
        with offline_mode(unreachable):
            rows = datasets.load_dataset(**arguments)
    except ConnectionError as exc:
        raise UserError(
            f"{spec.label}: cannot reach the Hugging Face Hub (offline or no connection); "
            f'download a copy and set [data.options] source = "/path/to/copy" '
            f"(or --set data.options.source=/path/to/copy)"
        ) from exc
    except (DatasetsError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if unreachable:  # e.g. "not cached": the cause is the unreachable Hub
            raise UserError(
                f"{spec.label}: cannot reach the Hugging Face Hub and the dataset is not in the datasets cache; "
                f'download a copy and set [data.options] source = "/path/to/copy"'
            ) from exc
        raise UserError(f"{spec.label}: cannot load split '{spec.split}': {first_line(exc)}") from exc
    if unreachable:
        logger.warning("%s: the Hugging Face Hub is unreachable; using the copy in the datasets cache", spec.label)
    if not isinstance(rows, datasets.Dataset):  # e.g. an IterableDataset: not random-access
        raise UserError(f"{spec.label}: expected a map-style dataset, got {type(rows).__name__}")
    return rows


class SubsetDataset(StyleDataset):
    """The examples of ``parent`` at ``indices``, in that order (still lazy and random-access)."""

    def __init__(self, parent: StyleDataset, indices: Sequence[int]) -> None:
        self.parent = parent
        self.indices = list(indices)
        self.name = parent.name

    @property
    def skipped(self) -> int:  # type: ignore[override]
        """Rows the parent skipped."""
        return self.parent.skipped

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Example:
        return self.parent[self.indices[index]]

    def blocks(self) -> list[int] | None:
        """The parent's blocks of these examples."""
        return at_indices(self.parent.blocks(), self.indices)

    def sizes(self) -> list[tuple[int, int]] | None:
        """The parent's image sizes of these examples."""
        return at_indices(self.parent.sizes(), self.indices)


def at_indices(values: list[T] | None, indices: Sequence[int]) -> list[T] | None:
    """The per-example ``values`` of the examples at ``indices`` (None stays None)."""
    return None if values is None else [values[i] for i in indices]


def limit_examples(dataset: StyleDataset, max_examples: int | None) -> StyleDataset:
    """The first ``max_examples`` examples of ``dataset`` (all of them when None or not fewer)."""
    if max_examples is None or max_examples >= len(dataset):
        return dataset
    if max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    return SubsetDataset(dataset, range(max_examples))


def build_adapter(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    modules: Sequence[str] = (),
    base_dir: Path | None = None,
    source: str = "recipe",
) -> DatasetAdapter:
    """The dataset adapter ``name`` with ``options`` validated, as a recipe's ``[data]`` section builds it.

    Plugins are loaded as for a run (built-ins, allowed entry points, ``modules``). Unknown
    names and bad options raise one :class:`UserError` listing every problem, prefixed by ``source``.
    """
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.resolve import build_component

    manager = get_plugin_manager(modules, base_dir=base_dir, source=source)
    errors: list[str] = []
    adapter = build_component(manager.collect().datasets, name, dict(options or {}), source, "data.adapter", errors)
    if errors or adapter is None:
        raise UserError.collect(errors)
    return adapter
