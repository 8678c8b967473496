"""Aspect-ratio bucketing: equal pixel counts, one size per batch, aspect kept, deterministic order."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from PIL import Image

from adaptkit.cli import main
from adaptkit.data.pipeline import ImagePipeline
from adaptkit.testing.datasets import pattern_image
from adaptkit.training.batches import Layout
from adaptkit.training.buckets import BucketOrder, BucketPlan, make_buckets, nearest_bucket

from training_helpers import run, write_recipe


def test_buckets_have_equal_pixel_counts_within_one_step() -> None:
    max_pixels, step = 512 * 512, 64
    buckets = make_buckets(max_pixels, step, max_aspect=2.0)
    assert (512, 512) in buckets and (448, 576) in buckets and (576, 448) in buckets
    for width, height in buckets:
        assert width % step == 0 and height % step == 0
        assert max_pixels - step * max(width, height) < width * height <= max_pixels
        assert max(width / height, height / width) <= 2.0
    ratios = [w / h for w, h in buckets]
    assert ratios == sorted(ratios) and len(set(ratios)) == len(ratios)


def test_images_keep_their_aspect_ratio_and_lose_less_than_a_square_crop() -> None:
    buckets = make_buckets(512 * 512, 64)
    log_ratios = [math.log(w / h) for w, h in buckets]
    half_gap = max(b - a for a, b in zip(log_ratios, log_ratios[1:])) / 2
    pipeline = ImagePipeline(512)
    rng = random.Random(0)
    for _ in range(40):
        width, height = rng.randint(300, 1600), rng.randint(300, 1600)
        if not buckets[0][0] / buckets[0][1] <= width / height <= buckets[-1][0] / buckets[-1][1]:
            assert nearest_bucket((width, height), buckets) in (buckets[0], buckets[-1])  # beyond: the extreme one
            continue
        bucket = nearest_bucket((width, height), buckets)
        # the nearest bucket in log aspect ratio: off by at most half the gap between neighbours
        assert abs(math.log(width / height) - math.log(bucket[0] / bucket[1])) <= half_gap + 1e-9
        resized = pipeline.resize(Image.new("RGB", (width, height)), bucket)
        assert resized.width >= bucket[0] and resized.height >= bucket[1]
        assert resized.width / resized.height == pytest.approx(width / height, rel=0.01)  # scaled, not stretched
        kept = bucket[0] * bucket[1] / (resized.width * resized.height)
        square_kept = min(width, height) / max(width, height)
        assert kept >= square_kept - 0.005 and kept >= math.exp(-half_gap) - 0.01  # (rounding of the resize)
    out = pipeline(pattern_image(0, (90, 40)), size=(64, 32))
    assert out.pixel_values.shape == (3, 32, 64)


def test_every_micro_batch_is_one_bucket_and_the_order_is_position_keyed() -> None:
    sizes = [(64, 32)] * 5 + [(32, 32)] * 7 + [(32, 64)] * 2
    plan = BucketPlan(sizes)
    order = BucketOrder(plan, batch_size=3, seed=11)
    layout = Layout(batch_size=3, gradient_accumulation=2, num_processes=2, process_index=1)
    for step in range(12):
        positions = layout.positions(step)
        for micro in range(2):
            chunk = positions[micro * 3 : micro * 3 + 3]
            assert len({sizes[order.index_of(p)] for p in chunk}) == 1
    epoch = [order.index_of(p) for p in range(order.chunks_per_epoch * 3)]
    assert set(epoch) == set(range(len(sizes)))  # every image once per epoch (short buckets wrap)
    assert order.chunks_per_epoch == 2 + 3 + 1
    fresh = BucketOrder(plan, batch_size=3, seed=11)
    assert [fresh.index_of(p) for p in range(500, 540)] == [order.index_of(p) for p in range(500, 540)]
    other = BucketOrder(plan, batch_size=3, seed=12)
    assert [other.index_of(p) for p in range(60)] != [order.index_of(p) for p in range(60)]


def test_plan_assigns_each_image_its_nearest_bucket() -> None:
    plan = BucketPlan.for_images([(100, 50), (50, 50), (40, 70), (33, 31)], max_pixels=32 * 32, step=8, max_aspect=2.0)
    assert plan.sizes == [(40, 24), (32, 32), (24, 40), (32, 32)]
    assert [len(g) for g in plan.groups()] == [1, 2, 1]


def write_mixed_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shapes = [(64, 32), (60, 34), (32, 32), (40, 40), (30, 60), (28, 50)]
    for i, size in enumerate(shapes):
        pattern_image(i, size).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a pattern, plate {i}")
    return folder


@pytest.mark.parametrize("cache_latents", [False, True])
def test_training_with_buckets(tmp_path, tiny_model_dir, cache_latents) -> None:
    folder = write_mixed_folder(tmp_path / "mixed")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lora",
        data={
            "adapter": "imagefolder",
            "options": {"source": str(folder)},
            "bucketing": True,
            "random_flip": True,
            "cache_latents": cache_latents,
        },
        train={"steps": 4, "batch_size": 2},
        sample={"prompts": []},
    )
    trainer, result = run(recipe)
    assert math.isfinite(result.final_loss)
    sizes = trainer.training_data.sizes
    assert set(sizes) == {(40, 24), (32, 32), (24, 40)}
    examples = trainer.training_examples
    for step in range(4):
        batch = [examples[p] for p in trainer.layout.positions(step)]
        assert len({sizes[row["index"]] for row in batch}) == 1
        if not cache_latents:
            assert len({tuple(row["pixel_values"].shape) for row in batch}) == 1
    if cache_latents:
        cache = trainer.latent_cache
        tasks = sorted(cache.first_draw.drawn) if cache.first_draw else sorted(cache.entries)
        assert tasks
        for (index, _), (mean, _) in zip(tasks, cache.posteriors(tasks), strict=True):  # at 1/8 of each bucket
            assert tuple(mean.shape) == (4, sizes[index][1] // 8, sizes[index][0] // 8)


def test_buckets_are_planned_from_the_scan_and_train_as_an_upfront_fill_does(tmp_path, tiny_model_dir) -> None:
    import json

    folder = write_mixed_folder(tmp_path / "mixed")
    losses, plans = {}, {}
    for fill in ("upfront", "first-draw"):
        recipe = write_recipe(tmp_path, tiny_model_dir, None, "lora", name=fill, sample={"prompts": []},
                              data={"adapter": "imagefolder", "options": {"source": str(folder)}, "bucketing": True,
                                    "cache_fill": fill, "cache_dir": str(tmp_path / fill)},
                              train={"steps": 1, "batch_size": 2})  # fmt: skip
        trainer, _ = run(recipe)
        losses[fill] = [json.loads(line)["loss"] for line in trainer.run.dir.metrics.read_text().splitlines()]
        plans[fill] = trainer.training_data.sizes
        if fill == "first-draw":  # the buckets came from the scan's headers: only the drawn images were decoded
            assert trainer.training_data.infos.described <= 2
    assert plans["first-draw"] == plans["upfront"] and set(plans["upfront"]) == {(40, 24), (32, 32), (24, 40)}
    assert losses["first-draw"] == pytest.approx(losses["upfront"], rel=1e-5, abs=1e-6)


def test_a_scan_reports_a_sideways_photo_at_its_decoded_size(tmp_path) -> None:
    from adaptkit.data.images import EXIF_ORIENTATION
    from adaptkit.data.loading import build_adapter

    folder = tmp_path / "photos"
    folder.mkdir()
    image = pattern_image(0, (48, 16))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6  # taken sideways: shown rotated by 90 degrees
    image.save(folder / "0.jpg", exif=exif)
    (folder / "0.txt").write_text("a photo")
    dataset = build_adapter("imagefolder", {"source": str(folder)}).load()
    assert dataset.sizes() == [(16, 48)] == [dataset[0].image.size]


def test_too_coarse_bucket_step_is_a_user_error(tmp_path, tiny_model_dir, capsys) -> None:
    folder = write_mixed_folder(tmp_path / "mixed")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lora",
        data={"adapter": "imagefolder", "options": {"source": str(folder)}, "bucketing": True, "bucket_step": 64},
    )
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert "data.bucket_step = 64" in capsys.readouterr().err


def test_buckets_over_blocks_keep_one_bucket_per_batch_and_read_block_by_block() -> None:
    rng = random.Random(0)
    sizes = [rng.choice([(64, 32), (32, 32), (32, 64)]) for _ in range(200)]
    plan = BucketPlan.for_images(sizes, 32 * 32, 8, 2.0)
    blocks = [i // 20 for i in range(200)]  # 10 shards of 20
    plain = BucketOrder(plan, 4, seed=5)
    blocked = BucketOrder(plan, 4, seed=5, blocks=blocks, in_flight=2)
    assert blocked.chunks_per_epoch == plain.chunks_per_epoch
    epoch = [blocked.index_of(p) for p in range(4 * blocked.chunks_per_epoch)]
    assert set(epoch) == set(range(200))  # every example, every epoch
    for start in range(0, len(epoch), 4):  # every micro-batch one bucket
        assert len({plan.sizes[i] for i in epoch[start : start + 4]}) == 1

    def block_loads(order: list[int], kept: int = 3) -> int:
        """How often a reader keeping the last ``kept`` blocks (in_flight + 1) loads one."""
        recent: list[int] = []
        loads = 0
        for index in order:
            if blocks[index] in recent:
                recent.remove(blocks[index])
            else:
                loads += 1
            recent = [*recent, blocks[index]][-kept:]
        return loads

    plain_epoch = [plain.index_of(p) for p in range(len(epoch))]
    assert block_loads(epoch) <= 20 < 100 < block_loads(plain_epoch)  # about once per block, not per sample
    resumed = BucketOrder(plan, 4, seed=5, blocks=blocks, in_flight=2)
    later = range(len(epoch) + 40, len(epoch) + 80)
    assert [resumed.index_of(p) for p in later] == [blocked.index_of(p) for p in later]
    assert [blocked.index_of(p) for p in range(len(epoch), 2 * len(epoch))] != epoch  # a new order each epoch
