"""Where the model's weights live during training: the device, and which dtype each one has."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from adaptkit.models.quantize import is_quantized

if TYPE_CHECKING:
    from adaptkit.models import SDComponents

#: ``train.mixed_precision`` -> the dtype frozen weights are kept in.
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def place_modules(
    components: "SDComponents",
    trainable: Sequence[torch.nn.Parameter],
    device: torch.device,
    weight_dtype: torch.dtype,
    *,
    cast_frozen: bool,
    trains_text_encoder: bool,
) -> None:
    """Everything on ``device``; frozen weights in ``weight_dtype`` when ``cast_frozen`` (not when the
    base itself trains), trainable ones in float32; the frozen modules in eval mode.

    The VAE stays in float32 (SD's VAE overflows in fp16; autocast still runs it in bf16), so a full
    fine-tune saves a float32 pipeline.
    """
    c = components
    c.vae.requires_grad_(False).to(device)
    for module in c.parts().values():
        if not is_quantized(module):  # a quantised module stays on the device and in the dtypes it loaded with
            module.to(device)
        if weight_dtype != torch.float32 and cast_frozen:
            for param in module.parameters():
                if not param.requires_grad and param.dtype.is_floating_point and not is_quantized(module):
                    param.data = param.data.to(weight_dtype)
    for param in trainable:
        param.data = param.data.float()
    c.vae.eval()
    if not trains_text_encoder:
        for encoder in c.text_encoders().values():
            encoder.eval()
