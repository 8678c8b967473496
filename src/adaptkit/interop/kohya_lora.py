"""LoRA in the kohya layout (A1111, Forge, ComfyUI; diffusers' ``load_lora_weights`` reads it too).

``lora_unet_…`` / ``lora_te_…`` keys with ``lora_down.weight`` (peft ``lora_A``),
``lora_up.weight`` (peft ``lora_B``) and a per-module ``alpha``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError
from adaptkit.interop.kohya_keys import DENOISER_PARTS, Layout, PartAdapter, peft_shape, to_kohya
from adaptkit.interop.metadata import RunInfo, header_metadata, write_safetensors

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig

LAYOUT = Layout(
    kind="LoRA",
    peft_to_kohya={"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"},
    rank_weight="lora_A.weight",
    rank_dim=0,
    network="networks.lora",
    required=("lora_A.weight", "lora_B.weight"),
)


def read_native(adapter_dir: Path) -> tuple[dict[str, dict[str, "torch.Tensor"]], dict[str, dict[str, Any]]]:
    """The peft state dicts and peft configs, by part, of a LoRA saved by the ``lora`` method."""
    from adaptkit.interop.peft_files import LORA_METADATA_KEY, LORA_WEIGHT_NAME, read_safetensors, split_parts

    weights = Path(adapter_dir) / LORA_WEIGHT_NAME
    if not weights.is_file():
        raise UserError(f"{adapter_dir}: no {LORA_WEIGHT_NAME} (not a LoRA result folder)")
    state, header = read_safetensors(weights)
    parts: dict[str, dict[str, torch.Tensor]] = split_parts(state)
    flat_configs = split_parts(json.loads(header.get(LORA_METADATA_KEY, "{}")))
    configs: dict[str, dict[str, Any]] = {}
    for part in parts:
        configs[part] = flat_configs.get(part, {})
        if not configs[part]:
            raise UserError(f"{weights}: no adapter config for the {part} LoRA in the file's metadata")
    return parts, configs


def check_kohya_ready(adapter_dir: Path, configs: dict[str, dict[str, Any]]) -> None:
    """A one-line UserError for a LoRA the kohya layout cannot hold exactly."""
    from adaptkit.interop.peft_files import LORA_WEIGHT_NAME

    weights = Path(adapter_dir) / LORA_WEIGHT_NAME
    for config in configs.values():
        if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_rslora"):
            raise UserError(f"{weights}: per-module ranks/alphas or rsLoRA cannot be exported to kohya")
        if config.get("use_dora"):
            raise UserError(
                f"{weights}: a DoRA adapter has no kohya layout here; export with --format diffusers or peft"
            )


def export(info: RunInfo, out: Path) -> Path:
    """Write the run's LoRA as one kohya ``.safetensors`` file at ``out``."""
    parts, configs = read_native(info.adapter_dir)
    check_kohya_ready(info.adapter_dir, configs)
    alphas = {part: float(config["lora_alpha"]) for part, config in configs.items()}
    denoiser = next((part for part in DENOISER_PARTS if part in configs), None)
    rank = int(configs[denoiser]["r"]) if denoiser else None
    metadata = header_metadata(info, rank=rank, alpha=alphas.get(denoiser or ""), network=LAYOUT.network)
    return write_safetensors(out, to_kohya(parts, alphas, LAYOUT, info.kohya_modules()), metadata)


def peft_config(adapter: PartAdapter) -> "LoraConfig":
    """The peft ``LoraConfig`` that reproduces ``adapter`` exactly (per-module ranks/alphas as patterns)."""
    from peft import LoraConfig

    keys, alpha = peft_shape(adapter)
    return LoraConfig(**keys, lora_alpha=alpha)
