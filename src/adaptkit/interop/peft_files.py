"""The peft file layer: adapter names and file names, injection, state dicts, configs, safetensors files.

Methods (:mod:`adaptkit.builtins.methods`) and every export/import format use these; nothing here
knows a method. Every problem with a saved file is a one-line :class:`~adaptkit.errors.UserError`
naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError, first_line

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig

#: The name every injected peft adapter has.
ADAPTER_NAME = "default"
#: A LoRA result: diffusers' ``save_lora_weights`` file, one file for every part (``unet.…``, ``text_encoder.…``).
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
#: The header key under which that file keeps each part's peft config (``unet.r``, ``text_encoder.r``, …).
LORA_METADATA_KEY = "lora_adapter_metadata"
#: A peft-format result (LoHa, plugins' LoKr/OFT), as ``PeftModel.save_pretrained`` writes it.
PEFT_WEIGHT_NAME = "adapter_model.safetensors"
PEFT_CONFIG_NAME = "adapter_config.json"
#: Pickle formats adapter weights are never loaded from.
PICKLE_WEIGHT_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.ckpt", "pytorch_lora_weights.bin")


def add_adapter(module: "torch.nn.Module", config: "PeftConfig", adapter_name: str = ADAPTER_NAME) -> None:
    """Inject ``config`` into ``module``: diffusers models through ``add_adapter``, others through peft.

    The text encoder goes through ``peft.inject_adapter_in_model`` directly: transformers 5.24's own
    ``add_adapter``/``load_adapter`` demand peft >= 0.22, newer than the peft this project runs.
    """
    from diffusers import ModelMixin
    from peft import inject_adapter_in_model

    if isinstance(module, ModelMixin):
        module.add_adapter(config, adapter_name=adapter_name)
    else:
        inject_adapter_in_model(config, module, adapter_name=adapter_name)


#: The pipeline attributes a denoiser goes by: a UNet (SD 1.x/2.x/XL) or a transformer (SD 3.x, Flux).
DENOISER_NAMES = ("unet", "transformer")


def denoiser_of(pipeline: Any) -> tuple[str, "torch.nn.Module"]:
    """``(name, module)`` of a pipeline's denoiser: its ``unet`` or its ``transformer``."""
    for name in DENOISER_NAMES:
        module = getattr(pipeline, name, None)
        if module is not None:
            return name, module
    raise ValueError(f"{type(pipeline).__name__} has no denoiser ({' or '.join(DENOISER_NAMES)})")


def has_adapter(module: "torch.nn.Module") -> bool:
    """True when :data:`ADAPTER_NAME` is injected into ``module``."""
    return ADAPTER_NAME in getattr(module, "peft_config", {})


def split_parts(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"unet.x": a, "text_encoder.y": b}`` as ``{"unet": {"x": a}, "text_encoder": {"y": b}}``."""
    parts: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        parts.setdefault(part, {})[rest] = value
    return parts


def adapter_state_dict(module: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    """The adapter's weights in peft naming (no adapter name in the keys), contiguous, on the CPU."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(module, adapter_name=ADAPTER_NAME)
    return {key: value.detach().to("cpu").contiguous() for key, value in state.items()}


def adapter_config_dict(module: "torch.nn.Module") -> dict[str, Any]:
    """The injected adapter's peft config as JSON-ready data (sets become sorted lists)."""
    data = module.peft_config[ADAPTER_NAME].to_dict()
    return {key: sorted(value) if isinstance(value, set) else value for key, value in data.items()}


def read_safetensors(path: Path) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; anything else is a UserError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from exc


def read_peft_config(path: Path, expected: type["PeftConfig"]) -> "PeftConfig":
    """The peft config saved at ``path`` (``adapter_config.json``), which must be an ``expected``."""
    from peft import PeftConfig

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        config = PeftConfig.from_peft_type(**{k: v for k, v in data.items() if k != "runtime_config"})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a readable peft adapter config ({str(exc).splitlines()[0]})") from exc
    if not isinstance(config, expected):
        raise UserError(f"{path}: a {type(config).__name__} adapter, expected a {expected.__name__}")
    return config


def saved_weights(folder: Path, name: str, method: str) -> Path:
    """``folder / name``, the weights a ``method`` result folder must hold; else a UserError (pickles named as such)."""
    weights = Path(folder) / name
    if not weights.is_file():
        refuse_pickles(Path(folder))
        raise UserError(f"{folder}: no {name} (not a {method} result folder)")
    return weights


def refuse_pickles(folder: Path) -> None:
    """A UserError naming the first pickle weights file in ``folder``, if there is one."""
    for name in PICKLE_WEIGHT_NAMES:
        if (folder / name).is_file():
            raise UserError(
                f"{folder / name}: pickle adapter weights are refused (they can run code when loaded); "
                "save them as safetensors"
            )


@contextmanager
def keep_training_mode(*modules: "torch.nn.Module") -> Iterator[None]:
    """Restore each module's train/eval mode on exit, recursively.

    Injected adapter layers start in training mode (dropout on) even inside an eval-mode model;
    without this, a LoRA with dropout would sample differently once loaded.
    """
    modes = [module.training for module in modules]
    try:
        yield
    finally:
        for module, training in zip(modules, modes, strict=True):
            module.train(training)


def load_adapter(
    module: "torch.nn.Module",
    config: "PeftConfig",
    state: dict[str, "torch.Tensor"],
    source: Path,
    what: str,
    adapter_name: str = ADAPTER_NAME,
) -> None:
    """Inject ``config`` into ``module`` and load ``state`` (peft naming) into it, exactly.

    Targets missing from ``module``, shape mismatches, and missing or unexpected weights are
    one-line UserErrors naming ``source``. After an error, discard ``module``: it may hold a
    partly loaded adapter.
    """
    try:
        add_adapter(module, config, adapter_name)
    except ValueError as exc:
        raise UserError(f"{source}: the adapter does not fit the {what} ({first_line(exc)})") from exc
    load_adapter_state(module, state, str(source), what, adapter_name)


def load_adapter_state(
    module: "torch.nn.Module",
    state: dict[str, "torch.Tensor"],
    source: str,
    what: str,
    adapter_name: str = ADAPTER_NAME,
) -> None:
    """Load ``state`` (peft naming) into the adapter already injected into ``module``, exactly.

    A shape mismatch, and missing or unexpected weights, are one-line UserErrors naming ``source``.
    """
    import torch
    from peft import set_peft_model_state_dict

    try:
        with torch.no_grad():
            result = set_peft_model_state_dict(module, state, adapter_name=adapter_name)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), first_line(exc))
        raise UserError(f"{source}: the adapter's weights do not fit the {what} ({detail})") from exc
    missing = [key for key in result.missing_keys if adapter_name in key.split(".")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(
            f"{source}: the adapter's weights do not match the {what}: "
            f"{len(missing)} missing, {len(unexpected)} unexpected (e.g. {example})"
        )
