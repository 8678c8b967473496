"""Shared by the dataset tests: a private ``datasets`` cache and recipe-style adapter loading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptkit.data.loading import build_adapter
from adaptkit.testing.datasets import isolated_datasets


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path) -> Iterator[None]:
    """Every test caches under its own tmp folder and never calls the Hub."""
    with isolated_datasets(tmp_path / "hf-cache"):
        yield


def load(name: str, **options: object):
    """Build the adapter as a recipe's [data] section would, and load the training split."""
    return build_adapter(name, options, source="test.toml").load()
