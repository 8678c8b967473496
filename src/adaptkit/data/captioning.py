"""Captioning a folder of images with a transformers image-to-text model, into ``.txt`` sidecars (the
captions the ``imagefolder`` adapter reads).

The model is any that ``AutoProcessor`` and ``AutoModelForImageTextToText`` load — BLIP by default,
as kohya's captioning script; a Hub id (cached, or downloaded unless offline) or a local folder.
Decoding is greedy, so a folder captions the same way every time. An image that already has a
sidecar is skipped unless asked to overwrite; each sidecar is written atomically, so an interrupted
run leaves whole captions only and captions the rest when run again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.errors import UserError

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class Captioner:
    """A loaded image-to-text model and its processor."""

    model: Any
    processor: Any
    max_new_tokens: int = 40

    @classmethod
    def load(cls, model: str, max_new_tokens: int = 40) -> "Captioner":
        """``model`` (Hub id or folder); a one-line UserError when it cannot be loaded here."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from adaptkit.data.loading import hub_offline

        local = Path(model).expanduser()
        source = str(local) if local.exists() else model
        try:
            processor = AutoProcessor.from_pretrained(source, local_files_only=hub_offline())
            network = AutoModelForImageTextToText.from_pretrained(source, local_files_only=hub_offline())
        except (OSError, ValueError, KeyError) as exc:
            where = "offline, and not in the local Hub cache" if hub_offline() else str(exc).splitlines()[0]
            raise UserError(
                f"--model {model}: cannot load an image-to-text model ({where}); pass --model a local folder"
            ) from exc
        return cls(network.eval(), processor, max_new_tokens)

    def caption(self, images: Sequence[Any]) -> list[str]:
        """One caption per image (greedy decoding)."""
        import torch

        inputs = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]


@dataclass(frozen=True)
class CaptionCount:
    """What a captioning pass did."""

    written: int
    skipped: int
    unreadable: tuple[str, ...]


def folder_images(folder: Path) -> list[Path]:
    """The images directly in ``folder``, sorted; a one-line UserError when it is not a folder."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def sidecar(image: Path) -> Path:
    return image.with_suffix(".txt")


def _batches(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def caption_folder(
    folder: Path,
    captioner: Captioner,
    *,
    overwrite: bool = False,
    batch_size: int = 8,
    prefix: str = "",
    advance: Callable[[int], None] = lambda n: None,
) -> CaptionCount:
    """Write a ``.txt`` caption beside every image of ``folder`` that has none (every image with
    ``overwrite``), ``prefix`` before each; ``advance(n)`` hears each batch done."""
    from PIL import Image, UnidentifiedImageError

    images = folder_images(folder)
    todo = [p for p in images if overwrite or not sidecar(p).exists()]
    written, unreadable = 0, []
    for batch in _batches(todo, batch_size):
        opened = []
        for path in batch:
            try:
                with Image.open(path) as image:
                    opened.append((path, image.convert("RGB")))
            except (OSError, UnidentifiedImageError):
                unreadable.append(path.name)
        captions = captioner.caption([image for _, image in opened]) if opened else []
        for (path, _), caption in zip(opened, captions, strict=True):
            text = " ".join(part for part in (prefix, caption) if part)
            tmp = sidecar(path).with_name(f".{sidecar(path).name}.{os.getpid()}")
            tmp.write_text(text + "\n", encoding="utf-8")
            os.replace(tmp, sidecar(path))
            written += 1
        advance(len(batch))
    return CaptionCount(written, len(images) - len(todo), tuple(unreadable))
