"""adaptkit's pytest plugin (the ``pytest11`` entry point ``adaptkit``): fixtures for plugin tests,
and a user cache folder of the session's own (``$ADAPTKIT_CACHE_DIR``) for every test.

Loaded automatically in any pytest run once adaptkit is installed, so a plugin's test file can
subclass the mixins in :mod:`adaptkit.testing.contracts` and use these fixtures without a conftest.
Kept free of heavy imports: torch and diffusers load only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diffusers folder (safetensors) holding the tiny SD v1-layout pipeline (seed 0); treat it as read-only."""
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd", seed=0)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$ADAPTKIT_CACHE_DIR`` at a folder of the test session, so runs that leave
    ``[data] cache_dir`` unset never write into the user's cache (subprocesses inherit it)."""
    from adaptkit.training.cache_folder import CACHE_DIR_ENV

    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("adaptkit-cache")
        patch.setenv(CACHE_DIR_ENV, str(folder))
        yield folder
