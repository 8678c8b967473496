"""A full fine-tune as one ``.safetensors`` in the original Stable Diffusion (CompVis / A1111) layout.

diffusers 0.42 ships only the other direction (``from_single_file`` and its
``convert_ldm_*_checkpoint`` helpers), so the key map is :mod:`adaptkit.interop.original_layout`,
which writes SD v1-layout UNets, VAEs and CLIP text encoders that ``from_single_file`` reads back
exactly. Weights keep the dtype the run saved them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptkit.errors import UserError
from adaptkit.interop.metadata import RunInfo, header_metadata, write_safetensors

if TYPE_CHECKING:
    import torch


def read_part(pipeline_dir: Path, part: str) -> dict[str, "torch.Tensor"]:
    """All tensors of ``pipeline_dir/part/*.safetensors`` (shards merged); a UserError if there are none."""
    from adaptkit.interop.peft_files import read_safetensors

    files = sorted((Path(pipeline_dir) / part).glob("*.safetensors"))
    if not files:
        raise UserError(f"{pipeline_dir / part}: no .safetensors weights (not a full fine-tune result folder)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(read_safetensors(file)[0])
    return state


def original_state_dict(pipeline_dir: Path) -> dict[str, "torch.Tensor"]:
    """UNet, VAE and text encoder of a saved diffusers pipeline folder in the original single-file layout."""
    from adaptkit.interop.original_layout import to_original

    return to_original(*(read_part(pipeline_dir, part) for part in ("unet", "vae", "text_encoder")))


def export(info: RunInfo, out: Path) -> Path:
    """Write the run's fine-tuned pipeline as one original-layout checkpoint at ``out``."""
    metadata = header_metadata(info, rank=None, alpha=None, network=None)
    return write_safetensors(out, original_state_dict(info.adapter_dir), metadata)
