"""Peak memory and throughput figures for logs and benchmarks."""

from __future__ import annotations

import resource
import sys
import time

import torch


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated on a GPU, peak RSS of this process on CPU, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class Throughput:
    """Images per second over the steps since the last read."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._images = 0

    def add(self, images: int) -> None:
        self._images += images

    def read(self) -> float:
        now = time.perf_counter()
        rate = self._images / max(now - self._start, 1e-9)
        self._start, self._images = now, 0
        return rate
