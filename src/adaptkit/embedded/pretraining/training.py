"""Training loops of the embedded model: VAE, latent caching, UNet + text encoder."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

Log = Callable[[str], None]


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×3 → float N×3×H×W in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _lr_factor(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


def train_vae(
    vae: AutoencoderKL,
    images: np.ndarray,
    steps: int,
    kl_weight: float,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    max_seconds: float = float("inf"),
    log: Log = print,
) -> dict[str, float]:
    """Train ``vae`` with MSE + L1 reconstruction + ``kl_weight`` × per-element KL."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    t0 = time.time()
    rec = kl = float("nan")
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * _lr_factor(step, steps, 50)
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen).numpy()
        x = images_to_tensor(images[idx])
        post = vae.encode(x).latent_dist
        out = vae.decode(post.sample(gen)).sample
        rec_loss = F.mse_loss(out, x) + 0.1 * F.l1_loss(out, x)
        kl_loss = post.kl().mean() / post.mean[0].numel()
        loss = rec_loss + kl_weight * kl_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        rec, kl = rec_loss.item(), kl_loss.item()
        if step % 50 == 0 or step == steps - 1:
            log(f"vae step {step} rec {rec:.5f} kl/elt {kl:.3f} ({time.time() - t0:.0f}s)")
        if time.time() - t0 > max_seconds:
            log(f"vae stopped by time budget at step {step}")
            break
    vae.eval()
    return {"rec_loss": rec, "kl_per_element": kl, "steps": step + 1}


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: np.ndarray, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std (unscaled) of every image."""
    means, stds = [], []
    for i in range(0, images.shape[0], batch_size):
        post = vae.encode(images_to_tensor(images[i : i + batch_size])).latent_dist
        means.append(post.mean)
        stds.append(post.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``images`` (uint8 N×H×W×3) after a round trip through the VAE (posterior mean), as uint8."""
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images_to_tensor(images[i : i + batch_size])
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        out.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


@torch.no_grad()
def psnr(vae: AutoencoderKL, images: np.ndarray) -> float:
    """Mean reconstruction PSNR (dB) of ``images`` through the posterior mean."""
    x = images_to_tensor(images)
    out = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    mse = ((out - x) / 2).pow(2).mean((1, 2, 3))
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


@dataclass
class UNetRun:
    """Hyper-parameters of the UNet + text-encoder stage."""

    steps: int = 3200
    batch_size: int = 64
    lr: float = 6e-4
    warmup: int = 100
    caption_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    seed: int = 0
    max_seconds: float = float("inf")
    checkpoint_every: float = 600.0  # seconds


class EMA:
    """Exponential moving average of module parameters (with warm-up)."""

    def __init__(self, modules: list[torch.nn.Module], decay: float) -> None:
        self.shadow = [copy.deepcopy(m).eval().requires_grad_(False) for m in modules]
        self.modules = modules
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Blend the live weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for live, avg in zip(self.modules, self.shadow):
            for p, q in zip(live.parameters(), avg.parameters()):
                q.mul_(d).add_(p.detach(), alpha=1 - d)


def train_unet(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    scheduler: DDPMScheduler,
    lat_mean: torch.Tensor,
    lat_std: torch.Tensor,
    scaling_factor: float,
    captions: list[str],
    run: UNetRun,
    checkpoint: Callable[[EMA, int], None] | None = None,
    log: Log = print,
) -> tuple[EMA, dict[str, float]]:
    """Jointly train UNet and text encoder on cached latents (epsilon, min-SNR weighting)."""
    gen = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    uniq = sorted(set(captions)) + [""]
    ids = tokenizer(
        uniq, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    cap_index = torch.tensor([uniq.index(c) for c in captions])
    empty = len(uniq) - 1
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=run.lr, weight_decay=1e-2)
    ema = EMA([unet, text_encoder], run.ema_decay)
    acp = scheduler.alphas_cumprod
    snr = acp / (1 - acp)
    unet.train()
    text_encoder.train()
    t0 = last_ckpt = time.time()
    losses: list[float] = []
    step = 0
    for step in range(run.steps):
        for g in opt.param_groups:
            g["lr"] = run.lr * _lr_factor(step, run.steps, run.warmup)
        idx = torch.randint(0, lat_mean.shape[0], (run.batch_size,), generator=gen)
        z = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=gen)) * scaling_factor
        drop = torch.rand(run.batch_size, generator=gen) < run.caption_dropout
        tok = ids[torch.where(drop, torch.full_like(idx, empty), cap_index[idx])]
        cond = text_encoder(tok)[0]
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (run.batch_size,), generator=gen)
        noisy = scheduler.add_noise(z, noise, t)
        pred = unet(noisy, t, cond).sample
        w = torch.clamp(snr[t], max=run.min_snr_gamma) / snr[t]
        loss = (w * (pred - noise).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        losses.append(loss.item())
        elapsed = time.time() - t0
        if step % 25 == 0:
            log(
                f"unet step {step} loss {np.mean(losses[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"({elapsed:.0f}s, {elapsed / (step + 1):.2f}s/step)"
            )
        if checkpoint is not None and time.time() - last_ckpt > run.checkpoint_every:
            checkpoint(ema, step + 1)
            last_ckpt = time.time()
        if elapsed > run.max_seconds:
            log(f"unet stopped by time budget at step {step}")
            break
    unet.eval()
    text_encoder.eval()
    return ema, {"steps": step + 1, "final_loss": float(np.mean(losses[-100:])), "seconds": time.time() - t0}
