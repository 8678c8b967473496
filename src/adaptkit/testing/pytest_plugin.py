"""adaptkit's pytest plugin (the ``pytest11`` entry point ``adaptkit``): fixtures for plugin tests,
and a user cache folder of the session's own (``$ADAPTKIT_CACHE_DIR``) for every test.

Loaded automatically in any pytest run once adaptkit is installed, so a plugin's test file can
subclass the mixins in :mod:`adaptkit.testing.contracts` and use these fixtures without a conftest.
Kept free of heavy imports: torch and diffusers load only when a fixture is used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diffusers folder (safetensors) holding the tiny SD v1-layout pipeline (seed 0); treat it as read-only."""
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd", seed=0)


_CACHE_KEY = pytest.StashKey[tuple[str, "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    """Point ``$ADAPTKIT_CACHE_DIR`` at a fresh folder before collection, so no run of the session
    (nor a subprocess, whatever environment a test module copies at import) writes into the user's
    cache when a recipe leaves ``[data] cache_dir`` unset."""
    from adaptkit.training.cache_folder import CACHE_DIR_ENV

    folder = tempfile.mkdtemp(prefix="adaptkit-test-cache-")
    config.stash[_CACHE_KEY] = (folder, os.environ.get(CACHE_DIR_ENV))
    os.environ[CACHE_DIR_ENV] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore ``$ADAPTKIT_CACHE_DIR`` and delete the session's cache folder."""
    from adaptkit.training.cache_folder import CACHE_DIR_ENV

    if _CACHE_KEY not in config.stash:
        return
    folder, before = config.stash[_CACHE_KEY]
    if before is None:
        os.environ.pop(CACHE_DIR_ENV, None)
    else:
        os.environ[CACHE_DIR_ENV] = before
    shutil.rmtree(folder, ignore_errors=True)
