"""The shared image pipeline: resize, crop, flip, normalise; image modes; caption choice."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from adaptkit.data.images import decode_rgb, to_rgb
from adaptkit.data.pipeline import (
    ImagePipeline,
    choose_caption,
    to_image,
    to_tensor,
)
from adaptkit.recipe import DataSection
from adaptkit.testing.datasets import broken_images, pattern_image, unusual_images


def columns_image(width: int, height: int) -> Image.Image:
    """Red channel = x * 5, green = y * 5: every pixel says where it is."""
    x = np.arange(width, dtype=np.uint8)[None, :].repeat(height, 0) * 5
    y = np.arange(height, dtype=np.uint8)[:, None].repeat(width, 1) * 5
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], axis=-1))


def pixel(values: torch.Tensor, channel: int, row: int, col: int) -> int:
    return round((float(values[channel, row, col]) + 1) * 127.5)


def test_output_shape_dtype_and_range() -> None:
    out = ImagePipeline(32)(pattern_image(1, (80, 48)))
    assert out.pixel_values.shape == (3, 32, 32) and out.pixel_values.dtype == torch.float32
    assert -1.0 <= float(out.pixel_values.min()) and float(out.pixel_values.max()) <= 1.0
    assert out.original_size == (48, 80)


def test_normalisation_maps_0_and_255_to_minus_one_and_one() -> None:
    image = Image.new("RGB", (8, 8), (0, 255, 0))
    values = ImagePipeline(8)(image).pixel_values
    assert values[0].unique().tolist() == [-1.0] and values[1].unique().tolist() == [1.0]
    assert to_image(to_tensor(pattern_image(2))).tobytes() == pattern_image(2).tobytes()


def test_shorter_side_is_resized_to_the_resolution() -> None:
    pipeline = ImagePipeline(16)
    assert pipeline.resize(pattern_image(0, (40, 20))).size == (32, 16)
    assert pipeline.resize(pattern_image(0, (20, 60))).size == (16, 48)
    assert ImagePipeline(16, interpolation="lanczos").resize(pattern_image(0, (8, 8))).size == (16, 16)


def test_center_crop_takes_the_middle() -> None:
    out = ImagePipeline(16)(columns_image(40, 16))  # no resize needed: shorter side is 16
    assert out.crop_top_left == (0, 12)
    assert [pixel(out.pixel_values, 0, 0, c) for c in (0, 15)] == [12 * 5, 27 * 5]
    tall = ImagePipeline(16)(columns_image(16, 30))
    assert tall.crop_top_left == (7, 0) and pixel(tall.pixel_values, 1, 0, 0) == 7 * 5


def test_random_crop_is_where_it_says_and_seeded() -> None:
    pipeline = ImagePipeline(16, center_crop=False)
    image = columns_image(40, 16)
    lefts = set()
    for seed in range(12):
        out = pipeline(image, random.Random(seed))
        top, left = out.crop_top_left
        assert top == 0 and 0 <= left <= 24
        assert pixel(out.pixel_values, 0, 0, 0) == left * 5
        lefts.add(left)
        again = pipeline(image, random.Random(seed))
        assert again.crop_top_left == out.crop_top_left and torch.equal(again.pixel_values, out.pixel_values)
    assert len(lefts) > 3


def test_flip_mirrors_and_is_seeded() -> None:
    image = columns_image(16, 16)
    plain = ImagePipeline(16)(image).pixel_values
    pipeline = ImagePipeline(16, random_flip=True)
    outcomes = [pipeline(image, random.Random(seed)) for seed in range(10)]
    assert {o.flipped for o in outcomes} == {True, False}
    for out in outcomes:
        expected = torch.flip(plain, dims=[2]) if out.flipped else plain
        assert torch.equal(out.pixel_values, expected)
    flipped = next(o for o in outcomes if o.flipped)
    assert pixel(flipped.pixel_values, 0, 0, 0) == 15 * 5
    assert not any(ImagePipeline(16)(image, random.Random(s)).flipped for s in range(10))


def test_torch_generator_is_deterministic() -> None:
    pipeline = ImagePipeline(16, center_crop=False, random_flip=True)
    image = pattern_image(3, (50, 20))
    first = pipeline(image, torch.Generator().manual_seed(7))
    second = pipeline(image, torch.Generator().manual_seed(7))
    assert first.crop_top_left == second.crop_top_left and torch.equal(first.pixel_values, second.pixel_values)


def test_built_from_the_recipe_data_section() -> None:
    data = DataSection(adapter="pokemon", resolution=24, center_crop=False, random_flip=True)
    pipeline = ImagePipeline.from_data_section(data)
    assert (pipeline.resolution, pipeline.center_crop, pipeline.random_flip) == (24, False, True)
    assert pipeline(pattern_image(0, (30, 40)), random.Random(0)).pixel_values.shape == (3, 24, 24)
    with pytest.raises(ValueError, match="interpolation must be one of bicubic, lanczos"):
        ImagePipeline(8, interpolation="nearest")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- modes


def grey(mode: str) -> Image.Image:
    """A 12×10 grey ramp in a high bit-depth mode."""
    ramp = np.asarray(pattern_image(5, (12, 10), mode="L"))
    arrays = {"I;16": ramp.astype(np.uint16) * 257, "I": ramp.astype(np.int32), "F": ramp.astype(np.float32) / 255}
    return Image.fromarray(arrays[mode])


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = grey(mode) if mode in ("I;16", "I", "F") else pattern_image(5, (12, 10), mode=mode)
    assert image.mode == mode
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (12, 10)
    if mode in ("I;16", "I", "F"):  # the same ramp whatever the bit depth
        expected = np.asarray(pattern_image(5, (12, 10), mode="L"))
        assert np.abs(np.asarray(rgb)[..., 0].astype(int) - expected).max() <= 1
    assert ImagePipeline(8)(image).pixel_values.shape == (3, 8, 8)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    levels = np.array([[0, 257 * 100, 32896, 65535]], dtype=np.uint16)
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 100, 128, 255]
    as_int32 = Image.fromarray(levels.astype(np.int32))
    assert as_int32.mode == "I" and np.asarray(to_rgb(as_int32))[0, :, 0].tolist() == [0, 100, 128, 255]
    small_int = Image.fromarray(np.array([[0, 17, 255]], dtype=np.int32))
    assert np.asarray(to_rgb(small_int))[0, :, 0].tolist() == [0, 17, 255]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(to_rgb(floats))[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_onto_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    assert np.asarray(to_rgb(rgba))[0].tolist() == [[255, 255, 255], [255, 0, 0]]
    half = Image.new("LA", (1, 1), (0, 128))
    assert np.asarray(to_rgb(half))[0, 0].tolist() == [127, 127, 127]


def test_encoded_unusual_images_decode_to_rgb() -> None:
    for name, data in unusual_images().items():
        image = decode_rgb(data)
        assert image.mode == "RGB", name
    assert np.asarray(decode_rgb(unusual_images()["gray16.png"]))[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize("name", sorted(broken_images()))
def test_broken_images_raise(name: str) -> None:
    with pytest.raises((OSError, SyntaxError, ValueError)):
        decode_rgb(broken_images()[name])


def test_exif_orientation_is_applied() -> None:
    image = pattern_image(0, (20, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # taken rotated by 90 degrees
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    assert decode_rgb(buffer.getvalue()).size == (10, 20)


# --------------------------------------------------------------------------- captions


def test_choose_caption() -> None:
    captions = ["first", "second", "third"]
    assert choose_caption(captions, None) == "first"
    assert choose_caption("only", random.Random(0)) == "only"
    picks = [choose_caption(captions, random.Random(seed)) for seed in range(30)]
    assert set(picks) == set(captions)
    assert picks == [choose_caption(captions, random.Random(seed)) for seed in range(30)]
    assert choose_caption(captions, torch.Generator().manual_seed(1)) in captions
    with pytest.raises(ValueError, match="no captions"):
        choose_caption([], random.Random(0))
