"""The kohya / ComfyUI key layout of Flux LoRAs: Black Forest Labs' original module names, as
sd-scripts writes them and ComfyUI, Forge and diffusers' ``FluxPipeline.load_lora_weights`` read them.

    lora_unet_double_blocks_0_img_attn_qkv      <- transformer_blocks.0.attn.to_q | to_k | to_v
    lora_unet_single_blocks_0_linear1           <- single_transformer_blocks.0.attn.to_q | to_k | to_v | proj_mlp

The original model fuses q, k and v (and in single blocks the MLP's input) into one linear layer,
so those kohya modules stand for several diffusers modules; adaptkit fuses and splits their
adapters exactly. The map follows diffusers' reader (``_convert_kohya_flux_lora_to_diffusers``).
The final layer's modulation is left out: its original layout swaps shift and scale.
"""

from __future__ import annotations

from typing import Any

from adaptkit import KohyaModule, UserError

#: Double-block modules with one diffusers counterpart: kohya name -> path within the block.
DOUBLE_BLOCK = {
    "img_attn_proj": "attn.to_out.0",
    "img_mlp_0": "ff.net.0.proj",
    "img_mlp_2": "ff.net.2",
    "img_mod_lin": "norm1.linear",
    "txt_attn_proj": "attn.to_add_out",
    "txt_mlp_0": "ff_context.net.0.proj",
    "txt_mlp_2": "ff_context.net.2",
    "txt_mod_lin": "norm1_context.linear",
}
SINGLE_BLOCK = {"linear2": "proj_out", "modulation_lin": "norm.linear"}
#: Modules outside the blocks.
EMBEDDERS = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in_in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in_out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in_in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in_out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in_in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in_out_layer": "time_text_embed.guidance_embedder.linear_2",
}
#: The config keys the layout is computed from.
NEEDED = ("num_layers", "num_single_layers", "num_attention_heads", "attention_head_dim")
#: Single blocks' MLP width over the model width (``FluxSingleTransformerBlock``'s ``mlp_ratio``).
MLP_RATIO = 4


def kohya_modules(config: dict[str, Any]) -> list[KohyaModule]:
    """Every adaptable module of a ``FluxTransformer2DModel`` configured by ``config``, by kohya name."""
    missing = [key for key in NEEDED if key not in config]
    if missing:
        raise UserError(f"the Flux transformer's config has no {', '.join(missing)} (cannot name its kohya modules)")
    width = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    modules = [KohyaModule(name, (path,)) for name, path in EMBEDDERS.items()]
    for i in range(int(config["num_layers"])):
        block = f"transformer_blocks.{i}"
        for stream, prefix in (("img", ""), ("txt", "add_")):
            qkv = (f"to_{x}" if stream == "img" else f"{prefix}{x}_proj" for x in "qkv")
            paths = tuple(f"{block}.attn.{name}" for name in qkv)
            modules.append(KohyaModule(f"double_blocks_{i}_{stream}_attn_qkv", paths, (width,) * 3))
        modules += [
            KohyaModule(f"double_blocks_{i}_{name}", (f"{block}.{path}",)) for name, path in DOUBLE_BLOCK.items()
        ]
    for i in range(int(config["num_single_layers"])):
        block = f"single_transformer_blocks.{i}"
        paths = (*(f"{block}.attn.to_{x}" for x in "qkv"), f"{block}.proj_mlp")
        modules.append(KohyaModule(f"single_blocks_{i}_linear1", paths, (width,) * 3 + (MLP_RATIO * width,)))
        modules += [
            KohyaModule(f"single_blocks_{i}_{name}", (f"{block}.{path}",)) for name, path in SINGLE_BLOCK.items()
        ]
    return modules
