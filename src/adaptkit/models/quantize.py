"""``model.quantize``: the frozen denoiser loaded quantised (``nf4``, ``int8`` through bitsandbytes,
``fp8`` through torchao), via diffusers' ``PipelineQuantizationConfig``, for adapters trained on top.

diffusers 0.42 quantises on load only with a CUDA device ("No GPU found. A GPU is needed for
quantization."), so on a machine without one the recipe is refused in one line before anything
loads. Only the denoiser is quantised; the adapters train in full precision, and exports hold only them.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import torch

from adaptkit.errors import UserError

if TYPE_CHECKING:
    from adaptkit.component import Method
    from adaptkit.recipe import ModelSection

#: ``model.quantize`` values -> (library that must be importable, what to install).
BACKENDS = {
    "nf4": ("bitsandbytes", "bitsandbytes"),
    "int8": ("bitsandbytes", "bitsandbytes"),
    "fp8": ("torchao", "torchao"),
}


def quantization_options(
    model: "ModelSection", model_index: dict[str, Any] | None, compute_dtype: torch.dtype
) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that quantise the denoiser, or ``{}`` without ``model.quantize``.

    Raises a one-line :class:`UserError` where it cannot run: no CUDA device, the backend library
    missing, or a single-file base (diffusers quantises pipeline folders and Hub ids on load).
    """
    kind = model.quantize
    if kind is None:
        return {}
    library, package = BACKENDS[kind]
    if not torch.cuda.is_available():
        raise UserError(
            f"model.quantize = {kind!r} needs a CUDA device (diffusers quantises on the GPU while loading) and "
            "none is available here; remove model.quantize to train the base unquantised"
        )
    if importlib.util.find_spec(library) is None:
        raise UserError(f"model.quantize = {kind!r} needs {library}: pip install {package}")
    if model_index is None:
        raise UserError(
            f"model.quantize = {kind!r}: {model.base} is a single file; quantising on load needs a diffusers "
            "folder or Hub id (save it as a folder with diffusers' from_single_file + save_pretrained first)"
        )
    from diffusers import PipelineQuantizationConfig

    denoiser = "unet" if model_index.get("unet") else "transformer"
    return {"quantization_config": PipelineQuantizationConfig(quant_mapping={denoiser: _config(kind, compute_dtype)})}


def _config(kind: str, compute_dtype: torch.dtype) -> Any:
    from diffusers import BitsAndBytesConfig, TorchAoConfig

    if kind == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)
    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return TorchAoConfig("float8_weight_only")


def is_quantized(module: torch.nn.Module) -> bool:
    """Whether diffusers loaded ``module`` quantised (it then stays where and as it was loaded)."""
    return bool(getattr(module, "is_quantized", False))


def check_quantized_method(model: "ModelSection", method: "Method") -> None:
    """A method that trains the base's own weights on a quantised base is a one-line UserError."""
    if model.quantize and method.trains_base_weights:
        raise UserError(
            f"model.quantize = {model.quantize!r}: method {method.name} trains the base's own weights, which a "
            "quantised base cannot; use an adapter method (lora, loha) or drop model.quantize"
        )
