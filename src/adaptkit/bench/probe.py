"""The bench's plugin: a timestamp after every optimizer step (the bench sets ``log_every = 1``).

Loaded through ``[plugins] modules = ["adaptkit.bench.probe"]``, so the bench times the same
Trainer users run. Timestamps go into ``run.state["bench_times"]`` (the first one at train start).
"""

from __future__ import annotations

import time
from typing import Any

from adaptkit.bench.flops import synchronize
from adaptkit.hookspecs import hookimpl

TIMES_KEY = "bench_times"


@hookimpl
def on_train_start(run: Any) -> None:
    synchronize(run.accelerator.device)
    run.state[TIMES_KEY] = [time.perf_counter()]


@hookimpl
def on_step_end(run: Any, step: int, logs: dict[str, Any]) -> None:
    synchronize(run.accelerator.device)
    run.state[TIMES_KEY].append(time.perf_counter())
