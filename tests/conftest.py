"""Test settings. ``tiny_model_dir`` comes from adaptkit's pytest plugin (adaptkit.testing.pytest_plugin)."""

from __future__ import annotations

import pytest
import torch

# One intra-op thread per test process: `pytest -n 2` then uses both cores without
# oversubscription (which slows small CPU kernels down by 10-50x).
torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    """Run torch on one thread (``ADAPTKIT_TEST_THREADS`` overrides).

    On the shared 2-core machines, torch's default of one thread per core spins against the
    other processes and makes the tiny-model tests 20-50x slower.
    """
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("ADAPTKIT_TEST_THREADS", "1")))
