"""Run a training command in this process and write the wall-clock time of every optimizer step.

    python benchmarks/step_clock.py TIMES.json -m adaptkit.cli run RECIPE.toml
    python benchmarks/step_clock.py TIMES.json SCRIPT.py ARG...

Steps are clocked by a global optimizer step post-hook
(``torch.optim.optimizer.register_optimizer_step_post_hook``), so any two training tools are timed by
the same code, whatever their loops look like. ``TIMES.json`` gets ``{"steps": [unix time, ...]}``
when the command exits (normally, by ``sys.exit`` or by an exception).
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import time
from pathlib import Path


def let_torchvision_import_without_its_ops() -> None:
    """Define the two operator schemas torchvision's Python side needs when its C++ ops cannot load.

    PyPI's torchvision 0.28.0 wheel is built against CUDA torch (its ``_C.so`` links ``libtorch_cuda``),
    so with the CPU-only torch 2.13 wheel its ops fail to load, and ``torchvision/_meta_registrations.py``
    then stops the import at an unconditional ``register_fake("torchvision::nms")``: "operator
    torchvision::nms does not exist". The PIL transforms diffusers' example uses never call an op; with
    the schemas defined (no kernels) the import goes through. A torchvision whose ops load is left alone.
    """
    import torch

    if hasattr(torch.ops.torchvision, "nms"):
        return
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    let_torchvision_import_without_its_ops.library = library  # kept alive: the schemas go with it


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, command = Path(sys.argv[1]), sys.argv[2:]
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    steps: list[float] = []
    register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(time.time()))
    atexit.register(lambda: out.write_text(json.dumps({"steps": steps}) + "\n", encoding="utf-8"))
    let_torchvision_import_without_its_ops()
    del torch
    if command[0] == "-m":
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        sys.path.insert(0, str(Path(command[0]).resolve().parent))
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
