"""Small CNN probes that read shape, colour, background, size and style off images.

One convolutional trunk with a linear head per attribute.  Trained on
generator ground truth with mild blur/noise/jitter augmentation so that they
judge diffusion samples fairly.  Stored as ``probes.safetensors`` plus
``config.json`` (label spaces and measured held-out accuracy).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from adaptkit.embedded.data import LABELS, Batch

WEIGHTS_NAME = "probes.safetensors"
CONFIG_NAME = "config.json"


class ProbeNet(nn.Module):
    """Conv trunk (64 px → 32 → 16 → 8×8 → global pool) with one linear head per attribute."""

    def __init__(self, heads: dict[str, int], width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        w = width
        self.trunk = nn.Sequential(
            block(3, w, 2), block(w, 2 * w, 1), block(2 * w, 2 * w, 2),
            block(2 * w, 4 * w, 1), block(4 * w, 4 * w, 2), block(4 * w, 4 * w, 1),
        )  # fmt: skip
        self.heads = nn.ModuleDict({k: nn.Linear(4 * w, n) for k, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head for images in [-1, 1] (N×3×H×W)."""
        h = self.trunk(x)
        feat = h.mean((2, 3))
        return {k: head(feat) for k, head in self.heads.items()}


def to_tensor(images: np.ndarray | Sequence[Image.Image], size: int = 64) -> torch.Tensor:
    """uint8 N×H×W×3 array or PIL images → float tensor in [-1, 1], resized to ``size``."""
    if not isinstance(images, np.ndarray):
        arrs = []
        for im in images:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            arrs.append(np.asarray(im, dtype=np.uint8))
        images = np.stack(arrs)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.2:
        return x
    r = max(1, math.ceil(2 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild diffusion-like corruption: blur, noise, colour/contrast jitter, shift."""
    n = x.shape[0]
    chunks = []
    for part in x.chunk(4):
        sigma = float(torch.rand((), generator=gen)) * 1.3
        chunks.append(_blur(part, sigma))
    x = torch.cat(chunks)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.16
    shift = (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.1
    x = x * gain + shift
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen) * 0.12
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = torch.roll(x, (dy, dx), (2, 3))
    return x.clamp(-1.2, 1.2)


def train_probe_net(
    train: Batch,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
    init: ProbeNet | None = None,
) -> ProbeNet:
    """Train a :class:`ProbeNet` on ``train`` with augmentation (from scratch, or on from ``init``)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = init if init is not None else ProbeNet({k: len(v) for k, v in LABELS.items()})
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    x_all = to_tensor(train.images)
    y_all = {k: torch.from_numpy(v).long() for k, v in train.labels.items()}
    net.train()
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=gen)
        out = net(augment(x_all[idx], gen))
        loss = sum(F.cross_entropy(out[k], y_all[k][idx]) for k in out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"probe step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    return net.eval()


@torch.no_grad()
def accuracy(net: ProbeNet, batch: Batch, augmented: bool = False, seed: int = 1) -> dict[str, float]:
    """Per-head accuracy of ``net`` on ``batch`` (optionally under augmentation)."""
    gen = torch.Generator().manual_seed(seed)
    net.eval()
    x = to_tensor(batch.images)
    correct = {k: 0 for k in LABELS}
    for i in range(0, x.shape[0], 256):
        xb = x[i : i + 256]
        out = net(augment(xb, gen) if augmented else xb)
        for k in LABELS:
            pred = out[k].argmax(1).numpy()
            correct[k] += int((pred == batch.labels[k][i : i + 256]).sum())
    return {k: correct[k] / x.shape[0] for k in LABELS}


class Probes:
    """Loaded probe network with a PIL-image prediction API."""

    def __init__(self, net: ProbeNet, config: dict) -> None:
        self.net = net.eval()
        self.config = config
        self.labels: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in config["labels"].items()}
        self.image_size: int = int(config.get("image_size", 64))

    @classmethod
    def load(cls, path: str | Path) -> Probes:
        """Load probes saved by :meth:`save` from directory ``path``."""
        path = Path(path)
        config = json.loads((path / CONFIG_NAME).read_text())
        net = ProbeNet({k: len(v) for k, v in config["labels"].items()}, config.get("width", 32))
        net.load_state_dict(load_file(str(path / WEIGHTS_NAME)))
        return cls(net, config)

    def save(self, path: str | Path) -> None:
        """Write ``probes.safetensors`` and ``config.json`` into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME))
        (path / CONFIG_NAME).write_text(json.dumps(self.config, indent=2))

    @torch.no_grad()
    def predict_proba(self, images: Sequence[Image.Image] | np.ndarray) -> dict[str, np.ndarray]:
        """Class probabilities per head (N×classes arrays)."""
        x = to_tensor(images, self.image_size)
        outs: dict[str, list[np.ndarray]] = {k: [] for k in self.labels}
        for i in range(0, x.shape[0], 256):
            for k, logits in self.net(x[i : i + 256]).items():
                outs[k].append(torch.softmax(logits, 1).numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def predict(self, images: Sequence[Image.Image] | np.ndarray) -> dict[str, list[str]]:
        """Predicted class name per head for each image."""
        if len(images) == 0:
            return {k: [] for k in self.labels}
        proba = self.predict_proba(images)
        return {k: [self.labels[k][i] for i in p.argmax(1)] for k, p in proba.items()}
