"""Masked loss (``[data] masked_loss``): a masked-out region gets exactly zero gradient under both
objectives, all-ones masks change nothing, and the mask follows the image's crop and flip identically
with pixels and with cached latents (and buckets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler
from PIL import Image

from adaptkit.cli import main
from adaptkit.component import Conditioning
from adaptkit.training.flow_matching import FlowMatchingConfig
from adaptkit.training.objective import ObjectiveConfig

from training_helpers import make_trainer, write_recipe

LATENTS = torch.randn(2, 4, 4, 6, generator=torch.Generator().manual_seed(0))
LEFT_OUT = torch.ones(2, 1, 4, 6)
LEFT_OUT[..., :3] = 0


def gradient_of(config, scheduler, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    prediction = torch.zeros_like(LATENTS, requires_grad=True)
    loss = config.loss(
        None, scheduler, LATENTS, Conditioning(torch.zeros(2, 1, 1)), torch.Generator().manual_seed(1),
        lambda noisy, t, c: prediction * 1.0, mask,
    )  # fmt: skip
    loss.backward()
    return loss.detach(), prediction.grad


@pytest.mark.parametrize(
    "config, scheduler",
    [
        (ObjectiveConfig(), DDPMScheduler()),
        (ObjectiveConfig(snr_gamma=5.0), DDPMScheduler()),
        (FlowMatchingConfig(loss_weighting="sigma_sqrt"), FlowMatchEulerDiscreteScheduler(shift=3.0)),
    ],
    ids=["ddpm", "ddpm-min-snr", "flow"],
)
def test_a_masked_out_region_gets_zero_gradient(config, scheduler) -> None:
    plain_loss, plain_grad = gradient_of(config, scheduler, None)
    ones_loss, ones_grad = gradient_of(config, scheduler, torch.ones(2, 1, 4, 6))
    assert torch.equal(plain_loss, ones_loss) and torch.equal(plain_grad, ones_grad)
    _, grad = gradient_of(config, scheduler, LEFT_OUT)
    assert torch.count_nonzero(grad[..., :3]) == 0
    assert torch.count_nonzero(grad[..., 3:]) == grad[..., 3:].numel()
    torch.testing.assert_close(grad[..., 3:], plain_grad[..., 3:])


def write_transparent_folder(root: Path) -> Path:
    """A 64x48 image whose left half is transparent, and one without transparency."""
    root.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    alpha = np.zeros((48, 64), dtype=np.uint8)
    alpha[:, 32:] = 255
    Image.fromarray(np.dstack([pixels, alpha]), "RGBA").save(root / "half.png")
    Image.fromarray(pixels).save(root / "opaque.png")
    rows = [{"file_name": "half.png", "text": "half"}, {"file_name": "opaque.png", "text": "whole"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def masks_by_step(tmp_path: Path, model: Path, folder: Path, name: str, **data) -> dict[tuple[str, bool], torch.Tensor]:
    data = {"adapter": "imagefolder", "options": {"source": str(folder)}, "masked_loss": True, **data}
    recipe = write_recipe(tmp_path, model, None, name=name, data=data, sample={"prompts": []})
    trainer = make_trainer(recipe)
    try:
        rows = [trainer.training_examples[position] for position in range(8)]
        return {(row["caption"], row["flipped"]): row["mask"] for row in rows}
    finally:
        trainer.cleanup()


def test_the_mask_follows_crop_and_flip_alike_with_pixels_and_cached_latents(tmp_path: Path, tiny_model_dir: Path):
    folder = write_transparent_folder(tmp_path / "images")
    common = {"resolution": 32, "random_flip": True}
    pixels = masks_by_step(tmp_path, tiny_model_dir, folder, "pixels", cache_latents=False, **common)
    cached = masks_by_step(tmp_path, tiny_model_dir, folder, "cached", cache_latents=True, **common)
    assert pixels.keys() == cached.keys() and any(flip for _, flip in pixels)
    for key, mask in pixels.items():
        assert mask.shape == (1, 4, 4) and torch.equal(mask, cached[key]), key
    for (caption, flipped), mask in pixels.items():
        if caption == "whole":
            assert torch.equal(mask, torch.ones(1, 4, 4))
        else:  # 64x48 -> 43x32, centre crop 32: columns 0..21 of the original's transparent 0..31 half
            trained = mask[0, 0] if not flipped else mask[0, 0].flip(0)
            assert trained[0] == 0 and trained[-1] == 1 and 0 < trained.sum() < 4
    bucketed = {"bucketing": True, "bucket_step": 8, **common}
    buckets = masks_by_step(tmp_path, tiny_model_dir, folder, "buckets", cache_latents=False, **bucketed)
    cached_buckets = masks_by_step(tmp_path, tiny_model_dir, folder, "cached-buckets", cache_latents=True, **bucketed)
    assert {tuple(mask.shape) for mask in buckets.values()} == {(1, 3, 5)}  # the 40x24 bucket, over 8
    assert all(torch.equal(mask, cached_buckets[key]) for key, mask in buckets.items())


def test_a_masked_run_trains(tmp_path: Path, tiny_model_dir: Path) -> None:
    from training_helpers import run

    folder = write_transparent_folder(tmp_path / "images")
    data = {"adapter": "imagefolder", "options": {"source": str(folder)}, "masked_loss": True}
    trainer, result = run(write_recipe(tmp_path, tiny_model_dir, None, data=data, sample={"prompts": []}))
    assert result.steps == 4 and np.isfinite(result.final_loss)


def test_mask_files_replace_the_transparency(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    """data.mask_dir: the mask named like the image (here the opposite of its alpha) is the one used."""
    folder = write_transparent_folder(tmp_path / "images")
    masks = tmp_path / "masks"
    masks.mkdir()
    inverse = np.zeros((48, 64), dtype=np.uint8)
    inverse[:, :32] = 255
    Image.fromarray(inverse, "L").save(masks / "half.jpg")
    common = {"resolution": 32, "cache_latents": True, "mask_dir": str(masks)}
    by_file = masks_by_step(tmp_path, tiny_model_dir, folder, "files", **common)
    half = next(mask for (caption, _), mask in by_file.items() if caption == "half")[0, 0]
    assert half[0] == 1 and half[-1] == 0  # left trained now, right not
    assert all(torch.equal(m, torch.ones(1, 4, 4)) for (caption, _), m in by_file.items() if caption == "whole")
    data = {"adapter": "imagefolder", "options": {"source": str(folder)}, "masked_loss": True}
    recipe = write_recipe(tmp_path, tiny_model_dir, None, name="x", data={**data, "mask_dir": str(tmp_path / "no")})
    capsys.readouterr()  # what the runs above printed
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == f"error: data.mask_dir: {tmp_path / 'no'}: no such folder"
