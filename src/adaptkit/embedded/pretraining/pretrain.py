"""Reproducible, seeded pretraining of the embedded world model and probes.

Usage::

    python -m adaptkit.embedded.pretraining.pretrain --out DIR --work DIR/work

The defaults are the settings of the shipped weights (seed 0; 96 min on a quiet 2-core CPU).

Stages: render data → probes → VAE → cache latents → UNet + text encoder
(caption dropout for classifier-free guidance) → prompt-following evaluation
with the probes.  Writes ``OUT/tiny-sd/`` (diffusers layout, safetensors),
``OUT/probes/`` and ``OUT/pretrain_report.json``; intermediate UNet
checkpoints overwrite ``OUT/tiny-sd/`` so a usable model exists early.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from adaptkit.embedded.data import LABELS, Batch, make_batch
from adaptkit.embedded.evaluate import DEFAULT_STEPS, eval_prompts, prompt_following
from adaptkit.embedded.pretraining import models
from adaptkit.embedded.pretraining.tokenizer import build_tokenizer
from adaptkit.embedded.pretraining.training import (
    EMA,
    UNetRun,
    encode_latents,
    psnr,
    reconstruct,
    train_unet,
    train_vae,
)
from adaptkit.embedded.probes import Probes, accuracy, train_probe_net
from adaptkit.embedded.styles import STYLE_CLASSES
from adaptkit.embedded.world import EVAL_SEED_OFFSET


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``); the defaults are the shipped settings."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="directory receiving tiny-sd/, probes/, report")
    p.add_argument("--work", type=Path, default=Path("/tmp/adaptkit-pretrain"), help="cache directory")
    p.add_argument("--minutes-budget", type=float, default=160.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-styled", type=int, default=12000)
    p.add_argument("--n-plain", type=int, default=32000)
    p.add_argument("--probe-steps", type=int, default=1200)
    p.add_argument("--n-decoded", type=int, default=6000, help="styled images whose VAE round trips tune the probes")
    p.add_argument("--probe-decoded-steps", type=int, default=500, help="0 skips tuning the probes on decoded images")
    p.add_argument("--probes-only", action="store_true", help="stop after the probes (with --init-from: tune them)")
    p.add_argument("--vae-steps", type=int, default=2000)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--unet-steps", type=int, default=UNetRun.steps)
    p.add_argument("--lr", type=float, default=UNetRun.lr)
    p.add_argument("--warmup", type=int, default=UNetRun.warmup)
    p.add_argument("--guidances", default="5")
    p.add_argument("--eval-per-prompt", type=int, default=4)
    p.add_argument("--eval-steps", type=int, default=DEFAULT_STEPS, help="sampler steps of every evaluation")
    p.add_argument("--probe-eval-images", type=int, default=2000, help="fresh images the probes are scored on")
    p.add_argument("--resume", action="store_true", help="reuse probes/VAE from a previous run")
    p.add_argument("--init-from", type=Path, default=None, help="continue UNet/text encoder from a saved pipeline")
    return p.parse_args(argv)


class Run:
    """Shared state: timing, logging and the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.time()
        args.out.mkdir(parents=True, exist_ok=True)
        args.work.mkdir(parents=True, exist_ok=True)
        self.report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "stages": {}}

    def log(self, msg: str) -> None:
        """Timestamped progress line on stdout."""
        print(f"[{time.time() - self.t0:7.1f}s] {msg}", flush=True)

    def stage(self, name: str, stage_seconds: float, **info: object) -> None:
        """Record a finished stage and write the report so far."""
        self.report["stages"][name] = {"wall_seconds": round(stage_seconds, 1), **info}
        self.log(f"stage {name} done in {stage_seconds:.0f}s: {info}")
        self.save_report()

    def save_report(self) -> None:
        """Write ``pretrain_report.json``."""
        self.report["total_seconds"] = round(time.time() - self.t0, 1)
        (self.args.out / "pretrain_report.json").write_text(json.dumps(self.report, indent=2))

    def remaining(self) -> float:
        """Seconds left in the budget."""
        return self.args.minutes_budget * 60 - (time.time() - self.t0)


def stage_probes(run: Run, styled) -> Probes:
    """Train the shape/colour/background/size/style probes and save them."""
    a = run.args
    path = a.out / "probes"
    if a.resume and (path / "probes.safetensors").exists():
        run.log("reusing probes")
        return Probes.load(path)
    t = time.time()
    net = train_probe_net(styled, steps=a.probe_steps, seed=a.seed, log=run.log)
    fresh = make_batch(a.probe_eval_images, EVAL_SEED_OFFSET + a.seed + 7, "any", STYLE_CLASSES, workers=2)
    clean, aug = accuracy(net, fresh), accuracy(net, fresh, augmented=True)
    config = {
        "labels": {k: list(v) for k, v in LABELS.items()},
        "image_size": 64,
        "width": 32,
        "heldout_accuracy": clean,
        "heldout_accuracy_augmented": aug,
        "heldout_data": f"{a.probe_eval_images} fresh images, seeds >= EVAL_SEED_OFFSET, all triples, styles cycled",
    }
    probes = Probes(net, config)
    probes.save(path)
    run.stage("probes", time.time() - t, accuracy=clean, accuracy_augmented=aug)
    return probes


def stage_probes_on_decoded(run: Run, probes: Probes, vae: models.AutoencoderKL) -> Probes:
    """Tune the probes on VAE round trips as well as on generator images.

    Generated images are decoded images: the VAE shifts hue and softens hatching a little
    (before tuning, the probes read the colour of 88 % of decoded ink images and 66 % of
    decoded pop images right). Tuning on both keeps the probes exact on generator images
    and makes them fair judges of decoded ones. Skipped when already done.
    """
    a = run.args
    path = a.out / "probes"
    if a.probe_decoded_steps <= 0 or "decoded_tuning" in probes.config:
        return probes
    t = time.time()
    real = make_batch(a.n_decoded, a.seed + 2, "train", STYLE_CLASSES, workers=2)
    both = Batch(
        np.concatenate([real.images, reconstruct(vae, real.images)]),
        {k: np.concatenate([v, v]) for k, v in real.labels.items()},
        real.captions * 2,
    )
    net = train_probe_net(both, steps=a.probe_decoded_steps, lr=5e-4, seed=a.seed + 2, log=run.log, init=probes.net)
    fresh = make_batch(a.probe_eval_images, EVAL_SEED_OFFSET + a.seed + 7, "any", STYLE_CLASSES, workers=2)
    decoded = Batch(reconstruct(vae, fresh.images), fresh.labels, fresh.captions)
    info = {
        "heldout_accuracy": accuracy(net, fresh),
        "heldout_accuracy_augmented": accuracy(net, fresh, augmented=True),
        "heldout_accuracy_decoded": accuracy(net, decoded),
    }
    config = {
        **probes.config,
        **info,
        "decoded_tuning": {"images": a.n_decoded, "steps": a.probe_decoded_steps, "lr": 5e-4},
        "heldout_data": probes.config.get("heldout_data", "") + "; decoded = the same images after a VAE round trip",
    }
    tuned = Probes(net, config)
    tuned.save(path)
    run.stage("probes_on_decoded", time.time() - t, **info)
    return tuned


def stage_vae(run: Run, styled, plain) -> models.AutoencoderKL:
    """Train the autoencoder on plain + styled images (styles must survive decoding)."""
    a = run.args
    path = a.work / "vae"
    if a.resume and path.exists():
        run.log("reusing VAE")
        return models.AutoencoderKL.from_pretrained(str(path))
    t = time.time()
    vae = models.build_vae()
    mix = np.concatenate([styled.images, plain.images[: len(styled.images) // 3]])
    info = train_vae(
        vae, mix, a.vae_steps, a.kl_weight, seed=a.seed, max_seconds=a.minutes_budget * 60 * 0.2, log=run.log
    )
    test = make_batch(256, EVAL_SEED_OFFSET + 11, "any", STYLE_CLASSES)
    info["psnr_db"] = psnr(vae, test.images)
    info["kl_weight"] = a.kl_weight
    vae.save_pretrained(str(path))
    run.stage("vae", time.time() - t, **info)
    return vae


def stage_latents(run: Run, vae: models.AutoencoderKL, plain, cache: Path):
    """Encode the plain training images once; the UNet trains on these cached posteriors."""
    t = time.time()
    lat_mean, lat_std = encode_latents(vae, plain.images)
    torch.save({"mean": lat_mean, "std": lat_std, "captions": plain.captions}, cache)
    run.stage(
        "latents",
        time.time() - t,
        latent_mean=float(lat_mean.mean()),
        posterior_std_mean=float(lat_std.mean()),
        channel_std=[float(v) for v in lat_mean.std((0, 2, 3))],
    )
    return lat_mean, lat_std, plain.captions


def main(argv: list[str] | None = None) -> None:
    """Run all stages."""
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    run = Run(a)
    cache = a.work / "latents.pt"
    init = models.load_pipeline(a.init_from) if a.init_from is not None else None
    if a.resume and cache.exists() and (a.out / "probes" / "probes.safetensors").exists():
        run.log("reusing probes, VAE and cached latents")
        probes = Probes.load(a.out / "probes")
        vae = init.vae if init is not None else models.AutoencoderKL.from_pretrained(str(a.work / "vae"))
        lat_mean, lat_std, captions = (lambda d: (d["mean"], d["std"], d["captions"]))(torch.load(cache))
    elif init is not None:
        # Continuation: the VAE comes with the initial model and the probes are already in
        # OUT; only the plain training set needs rendering and encoding again.
        probes = stage_probes_on_decoded(run, Probes.load(a.out / "probes"), init.vae)
        if a.probes_only:
            return
        vae = init.vae
        t = time.time()
        plain = make_batch(a.n_plain, a.seed + 1, "train", ("plain",), workers=2)
        run.stage("data", time.time() - t, n_plain=a.n_plain)
        lat_mean, lat_std, captions = stage_latents(run, vae, plain, cache)
    else:
        t = time.time()
        styled = make_batch(a.n_styled, a.seed, "train", STYLE_CLASSES, workers=2)
        plain = make_batch(a.n_plain, a.seed + 1, "train", ("plain",), workers=2)
        run.stage("data", time.time() - t, n_styled=a.n_styled, n_plain=a.n_plain)
        probes = stage_probes(run, styled)
        vae = stage_vae(run, styled, plain)
        probes = stage_probes_on_decoded(run, probes, vae)
        lat_mean, lat_std, captions = stage_latents(run, vae, plain, cache)
    if init is not None:
        # The UNet being continued was trained with this scaling; keep it exactly.
        scaling = float(init.vae.config.scaling_factor)
    else:
        scaling = float(1.0 / lat_mean.std())
    vae.register_to_config(scaling_factor=scaling)
    run.report["vae_scaling_factor"] = scaling

    # A continuation keeps the initial model's tokenizer: rebuilding the BPE is not
    # reproducible across processes (tie-breaking), and the text encoder's ids must match.
    tokenizer = init.tokenizer if init is not None else build_tokenizer()
    unet, text_encoder, scheduler = models.build_unet(), models.build_text_encoder(tokenizer), models.build_scheduler()
    if init is not None:
        unet.load_state_dict(init.unet.state_dict())
        text_encoder.load_state_dict(init.text_encoder.state_dict())
        run.log(f"continuing UNet/text encoder from {a.init_from}")
        previous = a.out / "pretrain_report.json"
        if previous.exists():
            run.report["continued_from"] = json.loads(previous.read_text())
    run.report["params_m"] = {
        "unet": sum(p.numel() for p in unet.parameters()) / 1e6,
        "text_encoder": sum(p.numel() for p in text_encoder.parameters()) / 1e6,
        "vae": sum(p.numel() for p in vae.parameters()) / 1e6,
        "probes": sum(p.numel() for p in probes.net.parameters()) / 1e6,
    }
    quick = eval_prompts("eval", per_prompt=2, seed=500_000)

    def export(ema: EMA) -> models.StableDiffusionPipeline:
        pipe = models.assemble_pipeline(vae, ema.shadow[0], ema.shadow[1], tokenizer, scheduler)
        models.save_pipeline(pipe, a.out / "tiny-sd")
        pipe = models.with_sampler(pipe)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def checkpoint(ema: EMA, step: int) -> None:
        pipe = export(ema)
        res = prompt_following(pipe, probes, quick, a.eval_steps, 5.0)
        run.log(f"checkpoint at step {step}: quick held-out eval (g=5) {res}")
        run.report.setdefault("checkpoints", []).append({"step": step, "elapsed": round(time.time() - run.t0), **res})
        run.save_report()

    t = time.time()
    cfg = UNetRun(
        steps=a.unet_steps, lr=a.lr, warmup=a.warmup, seed=a.seed, max_seconds=max(60.0, run.remaining() - 300)
    )
    ema, info = train_unet(
        unet, text_encoder, tokenizer, scheduler, lat_mean, lat_std, scaling, captions, cfg, checkpoint, run.log
    )
    run.stage("unet", time.time() - t, **info, run={k: v for k, v in vars(cfg).items()})

    t = time.time()
    pipe = export(ema)
    specs = eval_prompts("eval", per_prompt=a.eval_per_prompt)
    results = {}
    for g in (float(v) for v in a.guidances.split(",")):
        results[str(g)] = prompt_following(pipe, probes, specs, a.eval_steps, g)
        run.log(f"held-out eval guidance {g}: {results[str(g)]}")
    best = max(results, key=lambda k: results[k]["both"])
    train_specs = eval_prompts("train", per_prompt=1, seed=900_000)
    train_res = prompt_following(pipe, probes, train_specs, a.eval_steps, float(best))
    run.report["sampling"] = {
        "scheduler": "DPMSolverMultistepScheduler",
        "steps": a.eval_steps,
        "guidance_scale": float(best),
    }
    run.stage(
        "evaluate",
        time.time() - t,
        heldout_prompts=len(specs),
        heldout=results,
        best_guidance=float(best),
        train_prompts=len(train_specs),
        train=train_res,
    )


if __name__ == "__main__":
    main()
