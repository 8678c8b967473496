"""The latent-cache fill against a bare batched ``vae.encode``, per image, with where the difference goes.

Writes ``--images`` JPEGs (``--source``, 640×512 by default, like photos) with captions into an
imagefolder, loads them through the imagefolder adapter (so each access decodes, as a Hub dataset
does) and times, on the SD v1.5 VAE architecture (random weights; ``--vae tiny``: a cheap one):

* ``bare``: ``vae.encode`` on pixel batches prepared beforehand (the floor);
* the parts the fill adds: ``decode+pipeline`` (decode, resize, crop, normalise every image),
  ``digests`` (the content hash keying the disk cache, over the decoded pixels), ``vae identity`` (hashing the
  VAE's weights), ``writes`` (one safetensors file per posterior);
* ``fill (memory)``, ``fill (disk, cold)`` and ``fill (disk, warm)``: the real
  :func:`~adaptkit.training.cache.fill_latent_cache`, as a first run and as a rerun.

Usage (CPU; one thread, 256 px keeps it to about a minute):

    python benchmarks/cache_fill_sd15.py --threads 1 --resolution 256 --images 16 --batch 8
    python benchmarks/cache_fill_sd15.py --vae tiny --resolution 128 --source 2048x1536 --images 32  # its own costs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def write_images(folder: Path, count: int, size: tuple[int, int] = (640, 512)) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):  # smooth noise, so JPEG decoding costs what a photo's does
        small = rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        image.save(folder / f"{index:03d}.jpg", quality=90)
        (folder / f"{index:03d}.txt").write_text(f"a photo, number {index}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--vae", choices=("sd15", "tiny"), default="sd15", help="tiny: a VAE so cheap that the fill's own costs show"
    )
    parser.add_argument("--source", default="640x512", metavar="WxH", help="size of the JPEGs (default 640x512)")
    args = parser.parse_args()
    source = tuple(int(side) for side in args.source.split("x"))
    torch.set_num_threads(args.threads)

    from adaptkit.data.loading import build_adapter
    from adaptkit.data.pipeline import ImagePipeline
    from adaptkit.testing.sd15 import build_sd15_random_pipeline
    from adaptkit.testing.tiny_model import build_tiny_vae
    from adaptkit.training.cache import LatentJob, fill_latent_cache
    from adaptkit.training.example_infos import describe_examples
    from adaptkit.training.fingerprints import module_identity
    from adaptkit.training.latent_store import DiskStore

    vae = (build_sd15_random_pipeline(seed=0).vae if args.vae == "sd15" else build_tiny_vae()).eval()
    work = Path(tempfile.mkdtemp(prefix="cache-fill-"))
    examples = build_adapter("imagefolder", {"source": str(write_images(work / "images", args.images, source))}).load(
        "train"
    )
    pipeline = ImagePipeline(args.resolution)
    size = (args.resolution, args.resolution)
    figures: dict[str, float] = {}

    figures["describe (no digests)"], _ = timed(lambda: describe_examples(examples))
    figures["digests"], infos = timed(lambda: describe_examples(examples, digests=True))
    figures["digests"] -= figures["describe (no digests)"]
    figures["vae identity"], _ = timed(lambda: module_identity(vae))
    figures["decode+pipeline"], pixels = timed(
        lambda: [pipeline(examples[i].image, size=size, flip=False).pixel_values for i in range(len(examples))]
    )

    def bare() -> list[torch.Tensor]:
        out = []
        for start in range(0, len(pixels), args.batch):
            with torch.no_grad():
                posterior = vae.encode(torch.stack(pixels[start : start + args.batch])).latent_dist
            out.extend(zip(posterior.mean, posterior.std))
        return out

    bare()  # warm-up (allocator, kernels)
    figures["bare vae.encode"], posteriors = timed(bare)
    store = DiskStore(work / "scratch")
    figures["writes"], _ = timed(lambda: [store.put(f"{i:040x}", m, s) for i, (m, s) in enumerate(posteriors)])

    job = LatentJob(examples, infos, [size] * len(infos), (False,), pipeline, "no")
    kwargs = dict(device=torch.device("cpu"), autocast=torch.no_grad, batch_size=args.batch, log=print)
    figures["fill (memory)"], _ = timed(lambda: fill_latent_cache(job, vae, **kwargs))
    disk = DiskStore(work / "cache")
    figures["fill (disk, cold)"], _ = timed(lambda: fill_latent_cache(job, vae, store=disk, **kwargs))
    rerun = DiskStore(disk.directory)
    figures["fill (disk, warm)"], _ = timed(lambda: fill_latent_cache(job, vae, store=rerun, **kwargs))

    per_image = {name: round(1000 * seconds / len(infos), 1) for name, seconds in figures.items()}
    settings = {"vae": args.vae, "source": args.source, "images": len(infos), "resolution": args.resolution}
    print(json.dumps({**settings, "batch": args.batch, "threads": args.threads, "ms_per_image": per_image}, indent=2))


if __name__ == "__main__":
    main()
