"""Optimizer-state bytes of AdamW vs 8-bit AdamW for a full fine-tune of the SD v1.5 UNet.

Read from the optimizers' own ``state`` after one step (zero gradients), block by block so that
the peak memory stays at one block's weights, gradients and states: Adam's state is per parameter,
so the per-block sums add up exactly to the whole UNet's. Usage:

    OMP_NUM_THREADS=1 python benchmarks/optimizer_state_sd15.py
"""

from __future__ import annotations

import json

import bitsandbytes as bnb
import torch
from diffusers import UNet2DConditionModel

from adaptkit.bench.flops import tensor_bytes
from adaptkit.models.source import resolve_base
from adaptkit.recipe import ModelSection


def state_bytes(optimizer_class: type, params: list[torch.nn.Parameter]) -> int:
    """Bytes in ``optimizer_class``'s state after one step over ``params``."""
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer = optimizer_class(params, lr=1e-4)
    optimizer.step()
    size = tensor_bytes(list(optimizer.state.values()))
    for p in params:
        p.grad = None
    return size


def main() -> None:
    folder = resolve_base(ModelSection(base="testing:sd15-random")).location
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    groups = [list(m.parameters()) for blocks in (unet.down_blocks, unet.up_blocks) for m in blocks]
    seen = {id(p) for g in groups for p in g}
    groups.append([p for p in unet.parameters() if id(p) not in seen])
    totals = {"params": 0, "adamw": 0, "adamw8bit": 0}
    for params in groups:
        totals["params"] += sum(p.numel() for p in params)
        totals["adamw"] += state_bytes(torch.optim.AdamW, params)
        totals["adamw8bit"] += state_bytes(bnb.optim.AdamW8bit, params)
    totals["ratio"] = totals["adamw8bit"] / totals["adamw"]
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
