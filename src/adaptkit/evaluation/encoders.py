"""Image and text encoders for metrics, loaded with ``from_pretrained`` from a Hub id or a local folder.

Embeddings are L2-normalised float32 rows on the CPU. Preprocessing uses transformers' PIL image
processors (``backend="pil"``), so torchvision is not needed. A model that cannot be loaded here
raises :class:`MetricUnavailable` with one line saying how to provide a local copy; loaded encoders
are shared between metrics (see :func:`load_encoder`), and each remembers the embeddings of the
images it has seen, so metrics scoring the same images encode them once.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from adaptkit.evaluation.context import MetricUnavailable

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_DINO = "facebook/dinov2-base"
DEFAULT_BATCH_SIZE = 16

EncoderKind = Literal["clip", "dino"]


@runtime_checkable
class ImageEncoder(Protocol):
    """Anything that embeds images as L2-normalised rows."""

    def encode_images(self, images: Sequence["Image.Image"]) -> "torch.Tensor": ...


@runtime_checkable
class ImageTextEncoder(ImageEncoder, Protocol):
    """An image encoder that also embeds texts into the same space (CLIP)."""

    def encode_texts(self, texts: Sequence[str]) -> "torch.Tensor": ...


class _Encoder:
    """Shared batching, normalisation and per-image embedding memo."""

    def __init__(self, model: Any, image_processor: Any, device: "torch.device", batch_size: int) -> None:
        self.model = model.eval().to(device)
        self.image_processor = image_processor
        self.device = device
        self.batch_size = batch_size
        self._memo: dict[int, "torch.Tensor"] = {}  # by id(image); an entry goes when its image does

    def _image_features(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError

    def encode_images(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        """``len(images) × D`` L2-normalised embeddings."""
        import torch

        todo = list({id(im): im for im in images if id(im) not in self._memo}.values())
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            pixels = self.image_processor(images=[im.convert("RGB") for im in chunk], return_tensors="pt")
            with torch.inference_mode():
                rows = _normalise(self._image_features(pixels["pixel_values"].to(self.device)))
            for im, row in zip(chunk, rows):
                self._memo[id(im)] = row
                weakref.finalize(im, self._memo.pop, id(im), None)  # so a reused id never hits a stale row
        if not images:
            return torch.zeros(0, 0)
        return torch.stack([self._memo[id(im)] for im in images])


class CLIPEncoder(_Encoder):
    """CLIP image and text embeddings (``CLIPModel.get_image_features`` / ``get_text_features``)."""

    def __init__(self, model: Any, image_processor: Any, tokenizer: Any, device: "torch.device", batch_size: int):
        super().__init__(model, image_processor, device, batch_size)
        self.tokenizer = tokenizer

    def _image_features(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    def encode_texts(self, texts: Sequence[str]) -> "torch.Tensor":
        """``len(texts) × D`` L2-normalised embeddings (truncated to the model's context length)."""
        import torch

        out = []
        max_length = min(int(self.tokenizer.model_max_length), self.model.config.text_config.max_position_embeddings)
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                feats = self.model.get_text_features(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                ).pooler_output
            out.append(_normalise(feats))
        return torch.cat(out) if out else torch.zeros(0, 0)


class DINOEncoder(_Encoder):
    """DINOv2 image embeddings: the class token of the last layer (``pooler_output``)."""

    def _image_features(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        return self.model(pixel_values=pixel_values).pooler_output


def _normalise(x: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.nn.functional.normalize(x.float(), dim=-1).cpu()


def unavailable_message(metric: str, model: str) -> str:
    """The one line a metric reports when ``model`` is not available offline."""
    return (
        f"metric {metric} needs model {model}: not in the local cache; download it with "
        f"`hf download {model}` on a machine with network, or set "
        f'[eval.{metric}] model = "/path/to/local/copy"'
    )


def _from_pretrained(cls: Any, model: str, metric: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(model)``: local folder, the cache, then (unless offline) the Hub."""
    from adaptkit.data.loading import hub_offline

    if Path(model).expanduser().exists():
        try:
            return cls.from_pretrained(str(Path(model).expanduser()), local_files_only=True, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricUnavailable(f"metric {metric}: cannot load model {model}: {first}") from exc
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise MetricUnavailable(
            f"metric {metric}: model folder {model} does not exist; set [eval.{metric}] model to a "
            "Hub id or an existing local copy"
        )
    try:
        return cls.from_pretrained(model, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        if hub_offline():
            raise MetricUnavailable(unavailable_message(metric, model)) from exc
    try:
        return cls.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise MetricUnavailable(unavailable_message(metric, model)) from exc


_ENCODERS: dict[tuple[str, str, str, int], _Encoder] = {}


def load_encoder(
    kind: EncoderKind, model: str, device: "torch.device", metric: str, batch_size: int = DEFAULT_BATCH_SIZE
) -> CLIPEncoder | DINOEncoder:
    """The ``kind`` encoder of ``model`` (Hub id or local folder) on ``device``, shared between metrics.

    Raises :class:`MetricUnavailable` naming ``metric`` and ``model`` when it cannot be loaded.
    """
    key = (kind, model, str(device), batch_size)
    if key not in _ENCODERS:
        _ENCODERS[key] = _load(kind, model, device, metric, batch_size)
    return _ENCODERS[key]


def _load(kind: EncoderKind, model: str, device: "torch.device", metric: str, batch_size: int) -> _Encoder:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, CLIPModel

    processor = _from_pretrained(AutoImageProcessor, model, metric, backend="pil")
    if kind == "clip":
        net = _from_pretrained(CLIPModel, model, metric)
        tokenizer = _from_pretrained(AutoTokenizer, model, metric)
        return CLIPEncoder(net, processor, tokenizer, device, batch_size)
    if kind == "dino":
        return DINOEncoder(_from_pretrained(AutoModel, model, metric), processor, device, batch_size)
    raise ValueError(f"unknown encoder kind {kind!r} (valid: clip, dino)")


def clear_encoders() -> None:
    """Forget the shared encoders (and their embedding memos)."""
    _ENCODERS.clear()


__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_DINO",
    "ImageEncoder",
    "ImageTextEncoder",
    "CLIPEncoder",
    "DINOEncoder",
    "load_encoder",
    "clear_encoders",
    "unavailable_message",
]
