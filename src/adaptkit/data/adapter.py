"""The base for dataset adapters over anything ``datasets.load_dataset`` reads.

A subclass only says which columns hold the image, the caption and (optionally) a key; loading
(Hub id or local copy), decoding, skipping and error messages are shared. Plugin authors can
subclass :class:`SourceAdapter` the same way the built-in adapters do::

    class MyAdapter(SourceAdapter):
        name = "mine"
        description = "My drawings."

        class Options(SourceOptions):
            source: str = source_field("me/my-drawings")

        def columns(self, features, spec):
            return ColumnMap(image="image", caption="caption")
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from adaptkit.component import DatasetAdapter, Options, StyleDataset
from adaptkit.data.columns import ColumnMap
from adaptkit.data.holdout import EVAL, split_dataset
from adaptkit.data.loading import SourceSpec, open_source
from adaptkit.data.rows import RowsDataset
from adaptkit.errors import UserError

if TYPE_CHECKING:
    import datasets

TRAIN = "train"
SOURCE_HELP = (
    "Hub id, or a local copy: a folder (Hub snapshot, parquet files, imagefolder), "
    "a .parquet/.csv/.json file, or a glob of them."
)


def source_field(default: Any = ..., description: str = SOURCE_HELP) -> Any:
    """The ``source`` option field, with the shared description; ``...`` makes it required."""
    return Field(default, description=description)


class SourceOptions(Options):
    """Options every source-backed adapter has: ``source`` and ``split``.

    Subclasses may also declare ``config`` (a Hub config name) and ``trust_remote_code``;
    :meth:`SourceAdapter.source_spec` passes them on.
    """

    source: str = source_field()
    split: str = Field(TRAIN, description="Split that holds the training data (train, validation, test, ...).")
    eval_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of examples (chosen by key: image, or e.g. contest_number) held out of training "
        "as the 'eval' split for evaluation (0: none).",
    )


class SourceAdapter(DatasetAdapter):
    """A dataset adapter that loads with ``datasets.load_dataset`` and maps columns.

    Subclasses set ``name``, ``description``, a nested ``Options(SourceOptions)`` and implement
    :meth:`columns`; :meth:`check_source` may refuse a source before it is read, :meth:`prepare`
    may add columns first (e.g. captions from sidecar files).
    ``builder`` forces a ``datasets`` builder (e.g. ``"imagefolder"``) for local folders.
    """

    Options: ClassVar[type[SourceOptions]] = SourceOptions
    builder: ClassVar[str | None] = None
    options: SourceOptions

    def source_spec(self, split: str | None = None) -> SourceSpec:
        """What to load: the options' source and config, and the split (see :meth:`load`)."""
        options = self.options
        return SourceSpec(
            dataset=self.name,
            source=options.source,
            split=options.split if split in (None, TRAIN) else split,
            config=getattr(options, "config", None),
            builder=self.builder,
            trust_remote_code=bool(getattr(options, "trust_remote_code", False)),
        )

    @abstractmethod
    def columns(self, features: datasets.Features, spec: SourceSpec) -> ColumnMap:
        """Which columns hold the image, the caption and the key; raise UserError naming what exists."""

    def check_source(self, spec: SourceSpec) -> None:
        """Refuse (UserError) or warn about the source before ``datasets`` reads it (default: nothing)."""

    def prepare(self, rows: datasets.Dataset, spec: SourceSpec) -> datasets.Dataset:
        """Adjust the loaded rows before columns are chosen (default: unchanged)."""
        return rows

    def read(self, spec: SourceSpec) -> StyleDataset:
        """Every example of ``spec``'s split: :meth:`check_source`, ``datasets.load_dataset``,
        :meth:`prepare`, then a lazily decoded :class:`RowsDataset` over the :meth:`columns`."""
        self.check_source(spec)
        rows = self.prepare(open_source(spec), spec)
        return RowsDataset.from_rows(spec, rows, self.columns(rows.features, spec))

    def load(self, split: str | None = TRAIN) -> StyleDataset:
        """Load a split (:meth:`read`), with the held-out examples set apart.

        ``"train"`` (or None) means the training data: the split named by the ``split`` option
        (default ``"train"``) without the held-out examples; ``"eval"`` means only those (see
        :mod:`adaptkit.data.holdout` and the ``eval_fraction`` option); any other name loads that
        split, e.g. ``"validation"``.
        """
        held_out = split == EVAL
        if held_out and self.options.eval_fraction <= 0:
            raise UserError(
                f"data.options.eval_fraction: is 0, so dataset {self.name} has no held-out 'eval' split; "
                "set it (e.g. 0.05) and train again so training does not see the held-out images"
            )
        spec = self.source_spec(TRAIN if held_out else split)
        dataset = self.read(spec)
        if held_out or split in (None, TRAIN):
            return split_dataset(dataset, self.options.eval_fraction, EVAL if held_out else TRAIN)
        return dataset
