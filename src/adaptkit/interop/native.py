"""The native formats, written from a run's ``adapter/`` with the export metadata added.

- ``diffusers``: a LoRA as ``pytorch_lora_weights.safetensors`` (``pipe.load_lora_weights``), a
  full fine-tune as the whole pipeline folder (the family's pipeline class ``from_pretrained``);
- ``peft``: one ``adapter_config.json`` + ``adapter_model.safetensors`` folder per adapted part
  (``unet/``, and ``text_encoder/`` for a LoRA that trained it), for ``PeftModel.from_pretrained``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from adaptkit.interop.metadata import RunInfo, header_metadata, write_safetensors


def diffusers_lora(info: RunInfo, out: Path) -> Path:
    """The LoRA file diffusers reads, its peft configs kept and the export metadata added."""
    from adaptkit.interop.kohya_lora import read_native
    from adaptkit.interop.peft_files import DENOISER_NAMES, read_safetensors
    from adaptkit.interop.peft_files import LORA_METADATA_KEY as METADATA_KEY
    from adaptkit.interop.peft_files import LORA_WEIGHT_NAME as WEIGHT_NAME

    _, configs = read_native(info.adapter_dir)
    state, header = read_safetensors(info.adapter_dir / WEIGHT_NAME)
    denoiser = next((configs[part] for part in DENOISER_NAMES if part in configs), {})
    metadata = header_metadata(info, rank=denoiser.get("r"), alpha=denoiser.get("lora_alpha"), network=None)
    write_safetensors(out / WEIGHT_NAME, state, {**metadata, METADATA_KEY: header[METADATA_KEY], "format": "pt"})
    return out


def diffusers_full(info: RunInfo, out: Path) -> Path:
    """A copy of the fine-tuned pipeline folder."""
    shutil.copytree(info.adapter_dir, out, dirs_exist_ok=True)
    return out


def peft_lora(info: RunInfo, out: Path) -> Path:
    """One peft adapter folder per part of the LoRA."""
    from peft import LoraConfig

    from adaptkit.interop.kohya_lora import read_native
    from adaptkit.interop.peft_files import PEFT_WEIGHT_NAME as WEIGHT_NAME

    parts, configs = read_native(info.adapter_dir)
    for part, state in parts.items():
        config = configs[part]
        metadata = header_metadata(info, rank=config.get("r"), alpha=config.get("lora_alpha"), network=None)
        write_safetensors(out / part / WEIGHT_NAME, state, {**metadata, "format": "pt"})
        LoraConfig(**config).save_pretrained(str(out / part))
    return out


def peft_loha(info: RunInfo, out: Path) -> Path:
    """The LoHa's peft folder (it already is one), the export metadata added."""
    from adaptkit.interop.lycoris_loha import read_native
    from adaptkit.interop.peft_files import PEFT_CONFIG_NAME as CONFIG_NAME
    from adaptkit.interop.peft_files import PEFT_WEIGHT_NAME as WEIGHT_NAME

    state, config = read_native(info.adapter_dir)
    metadata = header_metadata(info, rank=config.r, alpha=config.alpha, network=None)
    write_safetensors(out / WEIGHT_NAME, state, {**metadata, "format": "pt"})
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(
        json.dumps(json.loads((info.adapter_dir / CONFIG_NAME).read_text(encoding="utf-8")), indent=2) + "\n",
        encoding="utf-8",
    )
    return out
