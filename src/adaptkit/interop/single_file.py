"""A full fine-tune as one ``.safetensors`` in the original Stable Diffusion (CompVis / A1111) layout.

diffusers 0.42 ships only the other direction (``from_single_file`` and its
``convert_ldm_*_checkpoint`` helpers), so the key map is :mod:`adaptkit.interop.original_layout`,
which writes UNets, VAEs and the text encoders in the layout the run's model family names, and
``from_single_file`` reads them back exactly. Weights keep the dtype the run saved them in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError
from adaptkit.interop.metadata import RunInfo, header_metadata, write_safetensors

if TYPE_CHECKING:
    import torch

    from adaptkit.component import ModelFamily


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


def read_config(pipeline_dir: Path, part: str) -> dict[str, Any]:
    """``pipeline_dir/part/config.json``; a UserError if it is missing or not JSON."""
    path = Path(pipeline_dir) / part / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the {part} config ({exc})") from exc


def original_state_dict(pipeline_dir: Path, family: "ModelFamily") -> dict[str, "torch.Tensor"]:
    """UNet, VAE and text encoders of a saved diffusers pipeline folder in ``family``'s original layout."""
    from adaptkit.interop.original_layout import to_original

    layout = family.single_file_text_encoders
    if layout is None:
        raise UserError(f"{pipeline_dir}: model family {family.name} has no single-file layout to export to")
    encoders = {name: (read_part(pipeline_dir, name), kind, prefix) for name, (kind, prefix) in layout.items()}
    return to_original(
        (read_part(pipeline_dir, "unet"), read_config(pipeline_dir, "unet")),
        (read_part(pipeline_dir, "vae"), read_config(pipeline_dir, "vae")),
        encoders,
    )


def export(info: RunInfo, out: Path) -> Path:
    """Write the run's fine-tuned pipeline as one original-layout checkpoint at ``out``."""
    metadata = header_metadata(info, rank=None, alpha=None, network=None)
    return write_safetensors(out, original_state_dict(info.adapter_dir, info.family), metadata)
