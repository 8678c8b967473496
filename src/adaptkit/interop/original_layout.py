"""Diffusers -> original Stable Diffusion (CompVis/A1111 "single-file") key layout, for SD v1 models.

Used by the single-file export (:mod:`adaptkit.interop.single_file`) and the test kit's tiny
single-file checkpoint; diffusers' ``from_single_file`` reads the result back exactly. It assumes
the SD v1 block structure: 4 levels, 2 ResNets per down level, 3 per up level, attention on all
but the deepest level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionPipeline

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer.text_model."
LEVELS = 4

_UNET_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_prefixes() -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) for every UNet block."""
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    for level in range(LEVELS):
        for j in range(2):
            pairs.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{3 * level + j + 1}.0."))
            pairs.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{3 * level + j + 1}.1."))
        pairs.append((f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{3 * level + 3}.0.op."))
        for j in range(3):
            pairs.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{3 * level + j}.0."))
            pairs.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{3 * level + j}.1."))
        pairs.append((f"up_blocks.{level}.upsamplers.0.", f"output_blocks.{3 * level + 2}.{1 if level == 0 else 2}."))
    return pairs


def _vae_prefixes() -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) for every VAE block (decoder levels are numbered in reverse)."""
    pairs = [("conv_norm_out.", "norm_out."), ("mid_block.attentions.0.", "mid.attn_1.")]
    pairs += [(f"mid_block.resnets.{k}.", f"mid.block_{k + 1}.") for k in range(2)]
    for level in range(LEVELS):
        pairs += [(f"encoder.down_blocks.{level}.resnets.{j}.", f"encoder.down.{level}.block.{j}.") for j in range(2)]
        pairs.append((f"encoder.down_blocks.{level}.downsamplers.0.", f"encoder.down.{level}.downsample."))
        up = LEVELS - 1 - level
        pairs += [(f"decoder.up_blocks.{level}.resnets.{j}.", f"decoder.up.{up}.block.{j}.") for j in range(3)]
        pairs.append((f"decoder.up_blocks.{level}.upsamplers.0.", f"decoder.up.{up}.upsample."))
    return pairs


def _rename(key: str, prefixes: list[tuple[str, str]]) -> tuple[str, str]:
    """Replace the longest diffusers prefix found anywhere in ``key``; return (new key, rest after it)."""
    best = max((p for p in prefixes if p[0] in key), key=lambda p: len(p[0]), default=None)
    if best is None:
        return key, ""
    head, rest = key.split(best[0], 1)
    return f"{head}{best[1]}{rest}", rest


def _replace_part(rest: str, parts: dict[str, str]) -> str:
    for old, new in parts.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    return rest


def unet_to_original(state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """A diffusers SD v1 UNet state dict in the original layout, without the ``model.diffusion_model.`` prefix."""
    converted = {}
    for key, value in state.items():
        new_key, rest = _rename(key, _unet_prefixes())
        if ".resnets." in key or key.startswith("mid_block.resnets."):
            new_key = new_key[: len(new_key) - len(rest)] + _replace_part(rest, _UNET_RESNET_PARTS)
        converted[new_key] = value
    return converted


def vae_to_original(state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """A diffusers SD v1 VAE state dict in the original layout (attention projections as 1x1 convs)."""
    converted = {}
    for key, value in state.items():
        new_key, rest = _rename(key, _vae_prefixes())
        stem = new_key[: len(new_key) - len(rest)]
        if "mid_block.attentions.0." in key:
            rest = _replace_part(rest, _VAE_ATTENTION_PARTS)
            if rest.endswith(".weight") and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
        elif "conv_shortcut." in rest:
            rest = rest.replace("conv_shortcut.", "nin_shortcut.")
        converted[stem + rest] = value
    return converted


def to_original(
    unet: dict[str, "torch.Tensor"], vae: dict[str, "torch.Tensor"], text_encoder: dict[str, "torch.Tensor"]
) -> dict[str, "torch.Tensor"]:
    """Diffusers UNet, VAE and CLIP text-encoder state dicts merged into one original-layout state dict."""
    text = {k.removeprefix("text_model."): v for k, v in text_encoder.items()}
    merged = {UNET_PREFIX + k: v for k, v in unet_to_original(unet).items()}
    merged.update({VAE_PREFIX + k: v for k, v in vae_to_original(vae).items()})
    merged.update({TEXT_PREFIX + k: v for k, v in text.items() if not k.endswith("position_ids")})
    return merged


def pipeline_to_original(pipeline: "StableDiffusionPipeline") -> dict[str, "torch.Tensor"]:
    """UNet, VAE and CLIP text encoder of ``pipeline`` as one original-layout state dict."""
    merged = to_original(pipeline.unet.state_dict(), pipeline.vae.state_dict(), pipeline.text_encoder.state_dict())
    return {k: v.detach().contiguous() for k, v in merged.items()}
