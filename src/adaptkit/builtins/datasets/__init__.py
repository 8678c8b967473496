"""Built-in dataset adapters, registered through ``register_datasets`` like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.builtins.datasets.hub import HubAdapter
from adaptkit.builtins.datasets.imagefolder import ImageFolderAdapter
from adaptkit.builtins.datasets.naruto import NarutoAdapter
from adaptkit.builtins.datasets.newyorker import NewYorkerAdapter
from adaptkit.builtins.datasets.pokemon import PokemonAdapter
from adaptkit.builtins.datasets.shards import ShardsAdapter
from adaptkit.builtins.datasets.simpsons import SimpsonsAdapter
from adaptkit.component import DatasetAdapter
from adaptkit.hookspecs import hookimpl

#: Every built-in adapter class, in the order ``adaptkit plugins`` shows them.
ADAPTERS: tuple[type[DatasetAdapter], ...] = (
    NewYorkerAdapter,
    PokemonAdapter,
    NarutoAdapter,
    SimpsonsAdapter,
    HubAdapter,
    ImageFolderAdapter,
    ShardsAdapter,
)


@hookimpl
def register_datasets(register: Callable[[type[DatasetAdapter]], None]) -> None:
    """Register the built-in dataset adapters."""
    for adapter in ADAPTERS:
        register(adapter)
