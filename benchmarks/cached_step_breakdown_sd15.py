"""Where the time of a cached SD v1.5 LoRA step goes on this CPU, and why caching saves less time than FLOPs.

Times the two halves of an uncached step separately, outside the trainer: the UNet forward + backward
of a LoRA step (r=4 on the attention projections, 64×64 latents = 512 px, batch 1 — all a cached
step computes) and the VAE encoder's forward on one 512 px image (what caching removes). The ratio
``unet / (unet + vae)`` is the best a cached step can reach against an uncached one. ``--profile``
adds the top operators of one UNet step (torch.profiler); ``--unet-only`` times the UNet step alone (the
"bare UNet forward + backward" ``vs_diffusers_example.py`` holds a trained step against). Usage:

    python benchmarks/cached_step_breakdown_sd15.py --threads 1 [--bf16] [--profile]
    python benchmarks/cached_step_breakdown_sd15.py --threads 2 --resolution 256 --gradient-checkpointing --unet-only
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from peft import LoraConfig

from adaptkit.testing.sd15 import build_sd15_random_pipeline


def seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` over ``repeats`` calls, after one untimed call."""
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (both halves)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--resolution", type=int, default=512, help="image side in pixels (latents: 1/8)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="as train.gradient_checkpointing")
    parser.add_argument("--unet-only", action="store_true", help="time the UNet step only, not the VAE encoder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipeline = build_sd15_random_pipeline()
    unet, vae = pipeline.unet, pipeline.vae
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        unet.train()
    side = args.resolution // 8
    latents, timestep = torch.randn(1, 4, side, side), torch.tensor([500])
    hidden, image = torch.randn(1, 77, 768), torch.randn(1, 3, args.resolution, args.resolution)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def unet_step() -> None:
        with autocast():
            prediction = unet(latents, timestep, hidden).sample
        prediction.float().pow(2).mean().backward()

    def vae_encode() -> None:
        with torch.no_grad(), autocast():
            vae.encode(image).latent_dist.sample()

    unet_s = seconds(unet_step, args.repeats)
    result = {
        "threads": args.threads,
        "dtype": "bf16" if args.bf16 else "fp32",
        "resolution": args.resolution,
        "gradient_checkpointing": args.gradient_checkpointing,
        "unet_lora_step_s": round(unet_s, 3),
    }
    if not args.unet_only:
        vae_s = seconds(vae_encode, args.repeats)
        result.update(vae_encode_s=round(vae_s, 3), best_cached_over_uncached=round(unet_s / (unet_s + vae_s), 3))
    print(json.dumps(result))
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            unet_step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
