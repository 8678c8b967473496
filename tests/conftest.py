"""Shared fixtures: a tiny Stable Diffusion v1-layout model saved once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# One intra-op thread per test process: `pytest -n 2` then uses both cores without
# oversubscription (which slows small CPU kernels down by 10-50x).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diffusers folder (safetensors) holding the tiny pipeline (seed 0); treat it as read-only."""
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd", seed=0)


def pytest_configure(config: pytest.Config) -> None:
    """Run torch on one thread (``ADAPTKIT_TEST_THREADS`` overrides).

    On the shared 2-core machines, torch's default of one thread per core spins against the
    other processes and makes the tiny-model tests 20-50x slower.
    """
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("ADAPTKIT_TEST_THREADS", "1")))
