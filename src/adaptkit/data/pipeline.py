"""The one image pipeline every dataset goes through: resize, crop, flip, normalise.

It does what diffusers' ``train_text_to_image`` does with torchvision, in PIL + numpy: resize
the shorter side to ``resolution``, crop a ``resolution``-square (centre or random), optionally
mirror, and return a float tensor C×H×W in ``[-1, 1]`` plus where the crop was taken. With
aspect-ratio bucketing (:mod:`adaptkit.training.buckets`) the output is a (width, height) bucket
instead of the square: the image is scaled to just cover it, then cropped.
All randomness comes from a generator passed in, so results are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from PIL import Image

from adaptkit.data.images import to_rgb

if TYPE_CHECKING:
    from adaptkit.recipe import DataSection

#: A source of randomness: ``random.Random`` or ``torch.Generator`` (``None`` = the global ``random``).
Rng = random.Random | torch.Generator | None

INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def _randint(rng: Rng, low: int, high: int) -> int:
    """An integer in ``[low, high]`` drawn from ``rng``."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(low, high + 1, (1,), generator=rng).item())
    return (rng or random).randint(low, high)


def _coin(rng: Rng) -> bool:
    """True with probability 1/2."""
    if isinstance(rng, torch.Generator):
        return bool(torch.rand((1,), generator=rng).item() < 0.5)
    return (rng or random).random() < 0.5


def choose_caption(captions: str | Sequence[str], rng: random.Random | torch.Generator | None = None) -> str:
    """One caption out of several: a random one drawn from ``rng`` when training, the first when ``rng`` is None.

    A single string is returned as is.
    """
    if isinstance(captions, str):
        return captions
    if not captions:
        raise ValueError("choose_caption: no captions to choose from")
    if rng is None or len(captions) == 1:
        return captions[0]
    return captions[_randint(rng, 0, len(captions) - 1)]


@dataclass(frozen=True)
class PipelineOutput:
    """What the pipeline returns for one image.

    ``pixel_values``: float32 tensor (3, resolution, resolution) in ``[-1, 1]``;
    ``original_size``: (height, width) before resizing;
    ``crop_top_left``: (top, left) of the crop in the resized (and, if ``flipped``, mirrored) image,
    the SDXL micro-conditioning convention.
    """

    pixel_values: torch.Tensor
    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]
    flipped: bool
    #: (1, H, W) in ``[0, 1]``: the loss weight of each pixel, when a mask was given.
    mask: torch.Tensor | None = None

    @property
    def geometry(self) -> tuple[int, int, int, int, int, int]:
        """(original h, w, crop top, left, output h, w): what size-aware denoisers are conditioned on."""
        height, width = self.pixel_values.shape[-2:]
        return (*self.original_size, *self.crop_top_left, int(height), int(width))


class ImagePipeline:
    """Resize the shorter side to ``resolution``, crop a square, maybe mirror, normalise to ``[-1, 1]``.

    Args:
        resolution: side of the square output, in pixels.
        center_crop: centre crop (True) or a random crop (False).
        random_flip: mirror horizontally with probability 1/2.
        interpolation: ``"bicubic"`` (default) or ``"lanczos"``; PIL's resize is antialiased.
    """

    def __init__(
        self,
        resolution: int,
        center_crop: bool = True,
        random_flip: bool = False,
        interpolation: Literal["bicubic", "lanczos"] = "bicubic",
    ) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.interpolation = interpolation

    @classmethod
    def from_data_section(cls, data: DataSection, **overrides: object) -> ImagePipeline:
        """Build from a recipe's ``[data]`` section (``resolution``, ``center_crop``, ``random_flip``)."""
        settings: dict[str, object] = {
            "resolution": data.resolution,
            "center_crop": data.center_crop,
            "random_flip": data.random_flip,
        }
        settings.update(overrides)
        return cls(**settings)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"ImagePipeline(resolution={self.resolution}, center_crop={self.center_crop}, "
            f"random_flip={self.random_flip}, interpolation={self.interpolation!r})"
        )

    def target(self, size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The output (width, height): ``size`` (an aspect-ratio bucket) or the ``resolution`` square."""
        return size if size is not None else (self.resolution, self.resolution)

    def resized_size(self, image_size: tuple[int, int], size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The (width, height) :meth:`resize` gives an image of ``image_size``: it just covers the target."""
        width, height = image_size
        target_w, target_h = self.target(size)
        scale = max(target_w / width, target_h / height)
        return max(target_w, round(width * scale)), max(target_h, round(height * scale))

    def resize(self, image: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
        """Scale (keeping the aspect ratio) so the image just covers the target: the shorter side = ``resolution``."""
        new = self.resized_size(image.size, size)
        if new == image.size:
            return image
        return image.resize(new, INTERPOLATIONS[self.interpolation])

    def center_geometry(
        self, image_size: tuple[int, int], size: tuple[int, int] | None = None
    ) -> tuple[int, int, int, int, int, int]:
        """:attr:`PipelineOutput.geometry` of a centre-cropped image of ``image_size`` (width, height),
        without decoding it (latents cached: the same numbers the pipeline would report)."""
        width, height = image_size
        top, left = self.crop_box(self.resized_size(image_size, size), None, size)
        target_w, target_h = self.target(size)
        return height, width, top, left, target_h, target_w

    def crop_box(
        self, size: tuple[int, int], rng: Rng = None, target: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        """(top, left) of the crop for an image of ``size`` = (width, height) after resizing."""
        width, height = size
        target_w, target_h = self.target(target)
        if self.center_crop:
            return round((height - target_h) / 2.0), round((width - target_w) / 2.0)
        return _randint(rng, 0, height - target_h), _randint(rng, 0, width - target_w)

    def draw_flip(self, rng: Rng = None) -> bool:
        """Whether to mirror: the first draw from ``rng`` (also used to replay the choice without the image)."""
        return self.random_flip and _coin(rng)

    def __call__(
        self,
        image: Image.Image,
        rng: Rng = None,
        *,
        size: tuple[int, int] | None = None,
        flip: bool | None = None,
        mask: Image.Image | None = None,
    ) -> PipelineOutput:
        """Transform one image (any mode; converted to RGB first). ``rng`` drives the crop and the flip.

        ``size``: output (width, height) instead of the square (aspect-ratio bucketing);
        ``flip``: force the mirror choice instead of drawing it (latent caching encodes both);
        ``mask``: an "L" image of the image's size, given the same resize, flip and crop
        (:attr:`PipelineOutput.mask`).
        """
        image = to_rgb(image)
        original_size = (image.height, image.width)
        image = self.resize(image, size)
        flipped = self.draw_flip(rng) if flip is None else flip
        if flipped:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        top, left = self.crop_box(image.size, rng, size)
        target_w, target_h = self.target(size)
        box = (left, top, left + target_w, top + target_h)
        mask_values = None
        if mask is not None:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR) if mask.size != image.size else mask
            mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else mask
            mask_values = torch.from_numpy(np.asarray(mask.crop(box), dtype=np.float32) / 255.0).unsqueeze(0)
        return PipelineOutput(to_tensor(image.crop(box)), original_size, (top, left), flipped, mask_values)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float32 tensor (3, H, W) in ``[-1, 1]`` (``x / 127.5 - 1``)."""
    array = np.asarray(to_rgb(image), dtype=np.float32)
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def to_image(pixel_values: torch.Tensor) -> Image.Image:
    """Inverse of :func:`to_tensor`: a (3, H, W) tensor in ``[-1, 1]`` -> RGB image."""
    array = ((pixel_values.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy())
