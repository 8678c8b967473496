"""adaptkit's pytest plugin (the ``pytest11`` entry point ``adaptkit``): fixtures for plugin tests.

Loaded automatically in any pytest run once adaptkit is installed, so a plugin's test file can
subclass the mixins in :mod:`adaptkit.testing.contracts` and use these fixtures without a conftest.
Kept free of heavy imports: torch and diffusers load only when a fixture is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diffusers folder (safetensors) holding the tiny SD v1-layout pipeline (seed 0); treat it as read-only."""
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd", seed=0)
