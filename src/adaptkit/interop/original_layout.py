"""Diffusers -> original Stable Diffusion (CompVis/SGM/A1111 "single-file") key layout.

Used by the single-file export (:mod:`adaptkit.interop.single_file`) and the test kit's tiny
single-file checkpoint; diffusers' ``from_single_file`` reads the result back exactly. The UNet
map follows the UNet's config (levels, ResNets per level, which levels attend, SDXL's
``add_embedding``); the VAE map the VAE's levels. Each text encoder is written in the layout its
model family names (:attr:`adaptkit.ModelFamily.single_file_text_encoders`): ``clip`` (the
transformers layout under a prefix) or ``openclip`` (OpenCLIP's ``resblocks`` with fused q/k/v).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_MODEL = "text_model."

_UNET_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
#: transformers CLIP -> OpenCLIP names inside one encoder layer.
_OPEN_CLIP_LAYER_PARTS = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
_OPEN_CLIP_TOP = {
    "embeddings.position_embedding.weight": "positional_embedding",
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}


def _unet_prefixes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) for every UNet block of a UNet with this config."""
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    layers = int(config["layers_per_block"])
    levels = len(config["block_out_channels"])
    per_level = layers + 1  # the ResNets, then the downsampler (input) or upsampler (output)
    for level in range(levels):
        for j in range(layers):
            pairs.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{per_level * level + j + 1}.0."))
            pairs.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{per_level * level + j + 1}.1."))
        pairs.append((f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{per_level * (level + 1)}.0.op."))
        for j in range(per_level):
            pairs.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{per_level * level + j}.0."))
            pairs.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{per_level * level + j}.1."))
        attends = "CrossAttn" in config["up_block_types"][level]
        upsampler = f"output_blocks.{per_level * level + layers}.{2 if attends else 1}."
        pairs.append((f"up_blocks.{level}.upsamplers.0.", upsampler))
    return pairs


def _vae_prefixes(levels: int) -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) for every VAE block (decoder levels are numbered in reverse)."""
    pairs = [("conv_norm_out.", "norm_out."), ("mid_block.attentions.0.", "mid.attn_1.")]
    pairs += [(f"mid_block.resnets.{k}.", f"mid.block_{k + 1}.") for k in range(2)]
    for level in range(levels):
        pairs += [(f"encoder.down_blocks.{level}.resnets.{j}.", f"encoder.down.{level}.block.{j}.") for j in range(2)]
        pairs.append((f"encoder.down_blocks.{level}.downsamplers.0.", f"encoder.down.{level}.downsample."))
        up = levels - 1 - level
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


def _unet_key(key: str, prefixes: list[tuple[str, str]]) -> str:
    new_key, rest = _rename(key, prefixes)
    if ".resnets." in key or key.startswith("mid_block.resnets."):
        new_key = new_key[: len(new_key) - len(rest)] + _replace_part(rest, _UNET_RESNET_PARTS)
    return new_key


def unet_to_original(state: dict[str, "torch.Tensor"], config: dict[str, Any]) -> dict[str, "torch.Tensor"]:
    """A diffusers UNet state dict in the original layout, without the ``model.diffusion_model.`` prefix."""
    prefixes = _unet_prefixes(config)
    return {_unet_key(key, prefixes): value for key, value in state.items()}


def unet_module_names(module_paths: list[str], config: dict[str, Any]) -> dict[str, str]:
    """diffusers UNet module path -> its original-layout path (``down_blocks.1.attentions.0.proj_in`` ->
    ``input_blocks.4.1.proj_in`` in SDXL), for every path the original layout renames."""
    prefixes = _unet_prefixes(config)
    names = {path: _unet_key(f"{path}.", prefixes).removesuffix(".") for path in module_paths}
    return {path: original for path, original in names.items() if original != path}


def vae_to_original(state: dict[str, "torch.Tensor"], levels: int = 4) -> dict[str, "torch.Tensor"]:
    """A diffusers VAE state dict in the original layout (attention projections as 1x1 convs)."""
    prefixes = _vae_prefixes(levels)
    converted = {}
    for key, value in state.items():
        new_key, rest = _rename(key, prefixes)
        stem = new_key[: len(new_key) - len(rest)]
        if "mid_block.attentions.0." in key:
            rest = _replace_part(rest, _VAE_ATTENTION_PARTS)
            if rest.endswith(".weight") and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
        elif "conv_shortcut." in rest:
            rest = rest.replace("conv_shortcut.", "nin_shortcut.")
        converted[stem + rest] = value
    return converted


def clip_to_original(state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """A transformers CLIP text encoder in the ``transformer.text_model.…`` layout (prefix not included)."""
    text = {k.removeprefix(TEXT_MODEL): v for k, v in state.items() if not k.endswith("position_ids")}
    return {f"{TEXT_MODEL}{k}": v for k, v in text.items() if not k.startswith("text_projection")}


def open_clip_to_original(state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """A transformers CLIP text encoder in OpenCLIP's layout: ``transformer.resblocks.N`` with fused
    ``in_proj`` q/k/v, ``ln_final``, ``positional_embedding`` and a transposed ``text_projection``."""
    import torch

    text = {k.removeprefix(TEXT_MODEL): v for k, v in state.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in text.items():
        if key in _OPEN_CLIP_TOP:
            out[_OPEN_CLIP_TOP[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif key.startswith("encoder.layers."):
            index, _, rest = key.removeprefix("encoder.layers.").partition(".")
            block = f"transformer.resblocks.{index}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                projection, kind = rest.split(".")[1], rest.split(".")[2]
                fused.setdefault(f"{block}attn.in_proj_{kind}", {})[projection] = value
            elif rest.startswith("self_attn.out_proj."):
                out[f"{block}attn.{rest.removeprefix('self_attn.')}"] = value
            else:
                out[block + _replace_part(rest, _OPEN_CLIP_LAYER_PARTS)] = value
        else:
            raise ValueError(f"no OpenCLIP name for text-encoder weight {key!r}")
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    return out


TEXT_LAYOUTS = {"clip": clip_to_original, "openclip": open_clip_to_original}


def to_original(
    unet: tuple[dict[str, "torch.Tensor"], dict[str, Any]],
    vae: tuple[dict[str, "torch.Tensor"], dict[str, Any]],
    text_encoders: dict[str, tuple[dict[str, "torch.Tensor"], str, str]],
) -> dict[str, "torch.Tensor"]:
    """One original-layout state dict of a UNet and a VAE (each ``(state, config)``) and the text
    encoders, each ``name -> (state, layout, prefix)`` with ``layout`` a key of :data:`TEXT_LAYOUTS`."""
    unet_state, unet_config = unet
    vae_state, vae_config = vae
    merged = {UNET_PREFIX + k: v for k, v in unet_to_original(unet_state, unet_config).items()}
    levels = len(vae_config.get("block_out_channels", (0,) * 4))
    merged.update({VAE_PREFIX + k: v for k, v in vae_to_original(vae_state, levels).items()})
    for state, layout, prefix in text_encoders.values():
        merged.update({prefix + k: v for k, v in TEXT_LAYOUTS[layout](state).items()})
    return merged


def pipeline_to_original(pipeline: Any, text_layout: dict[str, tuple[str, str]]) -> dict[str, "torch.Tensor"]:
    """A pipeline's UNet, VAE and text encoders as one original-layout state dict; ``text_layout``
    is the family's ``name -> (layout, prefix)``."""
    encoders = {
        name: (getattr(pipeline, name).state_dict(), layout, prefix) for name, (layout, prefix) in text_layout.items()
    }
    merged = to_original(
        (pipeline.unet.state_dict(), dict(pipeline.unet.config)),
        (pipeline.vae.state_dict(), dict(pipeline.vae.config)),
        encoders,
    )
    return {k: v.detach().contiguous() for k, v in merged.items()}
