"""LoHa in the LyCORIS layout (A1111/Forge/ComfyUI with LyCORIS support).

``lora_unet_…`` / ``lora_te_…`` keys with ``hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``,
``hada_w2_b`` (and ``hada_t1``/``hada_t2`` for Tucker-decomposed convs) and a per-module
``alpha``. peft's LoHa is a port of LyCORIS': the tensors have the same shapes and the update is
``(w1_a @ w1_b) * (w2_a @ w2_b) * alpha / rank`` in both, so weights are copied unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.errors import UserError
from adaptkit.interop.kohya_keys import Layout, PartAdapter, peft_shape, to_kohya
from adaptkit.interop.metadata import RunInfo, header_metadata, write_safetensors

if TYPE_CHECKING:
    import torch
    from peft import LoHaConfig

WEIGHTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
LAYOUT = Layout(
    kind="LoHa",
    peft_to_kohya={name: name for name in WEIGHTS},
    rank_weight="hada_w1_b",
    rank_dim=0,
    network="lycoris.kohya",
    required=WEIGHTS[:4],
)


def read_native(adapter_dir: Path) -> tuple[dict[str, "torch.Tensor"], "LoHaConfig"]:
    """The UNet's peft LoHa state dict and config, as the ``loha`` method saved them."""
    from peft import LoHaConfig

    from adaptkit.interop.peft_files import PEFT_CONFIG_NAME as CONFIG_NAME
    from adaptkit.interop.peft_files import PEFT_WEIGHT_NAME as WEIGHT_NAME
    from adaptkit.interop.peft_files import read_peft_config, read_safetensors

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / WEIGHT_NAME).is_file() or not (adapter_dir / CONFIG_NAME).is_file():
        raise UserError(f"{adapter_dir}: no {WEIGHT_NAME} + {CONFIG_NAME} (not a LoHa result folder)")
    state, _ = read_safetensors(adapter_dir / WEIGHT_NAME)
    config = read_peft_config(adapter_dir / CONFIG_NAME, LoHaConfig)
    if config.rank_pattern or config.alpha_pattern:
        raise UserError(f"{adapter_dir / CONFIG_NAME}: per-module ranks/alphas cannot be exported to LyCORIS")
    return state, config


def export(info: RunInfo, out: Path) -> Path:
    """Write the run's LoHa as one LyCORIS ``.safetensors`` file at ``out``."""
    state, config = read_native(info.adapter_dir)
    metadata = header_metadata(info, rank=config.r, alpha=config.alpha, network=LAYOUT.network)
    part = info.denoiser_part
    layout = to_kohya({part: state}, {part: float(config.alpha)}, LAYOUT, info.kohya_modules())
    return write_safetensors(out, layout, metadata)


def peft_config(adapter: PartAdapter) -> "LoHaConfig":
    """The peft ``LoHaConfig`` that reproduces ``adapter`` exactly (Tucker convs when the file has them)."""
    from peft import LoHaConfig

    keys, alpha = peft_shape(adapter)
    return LoHaConfig(
        **keys,
        alpha=alpha,
        use_effective_conv2d=any(key.endswith(".hada_t1") for key in adapter.state),
    )
