"""The kohya / LyCORIS key layout shared by LoRA and LoHa files, in both directions.

A kohya file names each adapted module ``lora_unet_<path>`` or ``lora_te_<path>`` (``lora_te1_`` and
``lora_te2_`` with two text encoders): the module's diffusers/transformers path with dots as
underscores, followed by the weight name and a per-module ``alpha``:

    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha

sd-scripts' SDXL LoRAs name UNet modules by the original layout instead
(``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``); both are read, diffusers names are
written (A1111, Forge and ComfyUI map them). The update is scaled by ``alpha / rank`` as in peft
(``lora_alpha / r``), so weights are copied unchanged. Underscores make the names ambiguous, so
reading a file maps them back through the modules of the model it is loaded onto.

A family with a layout of its own (:meth:`~adaptkit.component.ModelFamily.kohya_modules`, Flux's
``double_blocks_0_img_attn_qkv``…) names its denoiser's modules instead; a module standing for several
diffusers modules is fused and split exactly (:mod:`adaptkit.interop.fused_modules`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError

if TYPE_CHECKING:
    import torch

    from adaptkit.component import KohyaModule

#: Part of the pipeline -> kohya prefix written for a model with one text encoder.
PREFIXES = {"unet": "lora_unet_", "transformer": "lora_unet_", "text_encoder": "lora_te_"}
#: ... and for a model with two (kohya's ``lora_te1_``/``lora_te2_``, which A1111, Forge and ComfyUI read).
TWO_ENCODER_PREFIXES = {
    "unet": "lora_unet_",
    "transformer": "lora_unet_",
    "text_encoder": "lora_te1_",
    "text_encoder_2": "lora_te2_",
}
#: Every prefix a part is read from (a one-encoder file written as ``lora_te1_`` loads too).
READ_PREFIXES = {
    "unet": ["lora_unet_"],
    "transformer": ["lora_unet_"],
    "text_encoder": ["lora_te_", "lora_te1_"],
    "text_encoder_2": ["lora_te2_"],
}
#: The parts that are a denoiser (a family's own kohya layout names their modules).
DENOISER_PARTS = ("unet", "transformer")
ALPHA = "alpha"
#: CLIP module paths in kohya files start with ``text_model.``; transformers 5's ``CLIPTextModel`` has no
#: such level (``encoder.layers.0…``), so it is added on export and dropped on import.
TEXT_MODEL = "text_model."


@dataclass(frozen=True)
class Layout:
    """How one adapter type's peft weight names map to the kohya/LyCORIS names (after the module name)."""

    kind: str
    peft_to_kohya: dict[str, str]
    #: The peft weight whose first or second dimension is the rank.
    rank_weight: str
    rank_dim: int
    #: kohya ``ss_network_module`` for the header.
    network: str
    #: peft weights every adapted module must have.
    required: tuple[str, ...]

    @property
    def kohya_to_peft(self) -> dict[str, str]:
        return {kohya: peft for peft, kohya in self.peft_to_kohya.items()}


@dataclass
class PartAdapter:
    """One part's (UNet or text encoder) adapter read from a kohya file, in peft naming."""

    state: dict[str, "torch.Tensor"]
    ranks: dict[str, int]
    alphas: dict[str, float]

    @property
    def modules(self) -> list[str]:
        return sorted(self.ranks)


def to_kohya(
    parts: dict[str, dict[str, "torch.Tensor"]],
    alphas: dict[str, float],
    layout: Layout,
    denoiser_modules: "list[KohyaModule] | None" = None,
) -> dict[str, "torch.Tensor"]:
    """peft state dicts by part (``unet``/``transformer``, ``text_encoder``) -> one kohya state dict with
    per-module alphas; ``denoiser_modules``: the family's own layout of the denoiser (fused modules too)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    prefixes = TWO_ENCODER_PREFIXES if "text_encoder_2" in parts else PREFIXES
    unknown = sorted(set(parts) - set(prefixes))
    if unknown:
        raise UserError(
            f"the adapter's {unknown[0]} part has no kohya/LyCORIS key layout (kohya names: "
            f"{', '.join(prefixes)}); export it with --format diffusers or peft"
        )
    for part, state in parts.items():
        if part in DENOISER_PARTS and denoiser_modules is not None:
            named = _by_family_layout(part, state, alphas[part], layout, denoiser_modules)
        else:
            named = {}
            for key, value in state.items():
                module, weight = _split(key, layout.peft_to_kohya, f"{part} adapter")
                named.setdefault(kohya_name(part, module, ""), ({}, alphas[part]))[0][weight] = value
        for name, (weights, alpha) in named.items():
            for weight, value in weights.items():
                out[f"{prefixes[part]}{name}.{layout.peft_to_kohya[weight]}"] = value
            out[f"{prefixes[part]}{name}.{ALPHA}"] = torch.tensor(float(alpha))
    return out


def _by_family_layout(
    part: str, state: dict[str, "torch.Tensor"], alpha: float, layout: Layout, modules: "list[KohyaModule]"
) -> dict[str, tuple[dict[str, "torch.Tensor"], float]]:
    """kohya module name -> (peft-named weights, alpha) under a family's layout, fusing where it fuses."""
    from adaptkit.interop.fused_modules import fuse

    by_path = {path: module for module in modules for path in module.paths}
    members: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        path, weight = _split(key, layout.peft_to_kohya, f"{part} adapter")
        if path not in by_path:
            raise UserError(
                f"the adapter's {part} module {path} has no name in the family's kohya layout; "
                "export it with --format diffusers or peft"
            )
        members.setdefault(path, {})[weight] = value
    named: dict[str, tuple[dict[str, torch.Tensor], float]] = {}
    for module in modules:
        adapted = {path: members[path] for path in module.paths if path in members}
        if not adapted:
            continue
        named[module.name] = (
            fuse(module, adapted, alpha) if len(module.paths) > 1 else (adapted[module.paths[0]], alpha)
        )
    return named


def from_kohya(
    state: dict[str, "torch.Tensor"],
    modules: dict[str, "torch.nn.Module"],
    layout: Layout,
    source: Path,
    denoiser_modules: "list[KohyaModule] | None" = None,
) -> dict[str, PartAdapter]:
    """A kohya state dict -> peft state dicts, ranks and alphas by part, resolved against ``modules``
    (the denoiser's through the family's ``denoiser_modules`` when it has its own layout).

    Every key must name a module of ``modules[part]`` and a weight of ``layout``; otherwise a
    one-line UserError names the key. A module without an ``alpha`` gets alpha = rank (scale 1), as
    in sd-scripts; a fused module is split into its members exactly.
    """
    from adaptkit.interop.fused_modules import unfuse

    lookup: dict[str, tuple[str, str | KohyaModule]] = {}
    for part, module in modules.items():
        for prefix in READ_PREFIXES[part]:
            if part in DENOISER_PARTS and denoiser_modules is not None:
                lookup.update({prefix + m.name: (part, m) for m in denoiser_modules})
            else:
                lookup.update(
                    {kohya_name(part, name, prefix): (part, path) for path, name in _module_names(part, module)}
                )
    found: dict[str, dict[str, torch.Tensor]] = {}
    alphas: dict[str, float] = {}
    for key, value in state.items():
        name, _, weight = key.partition(".")
        if name not in lookup:
            raise UserError(f"{source}: key {key!r} names no module of the model (expected lora_unet_… or lora_te_…)")
        weights = found.setdefault(name, {})
        if weight == ALPHA:
            alphas[name] = float(value.item())
            continue
        if weight not in layout.kohya_to_peft:
            valid = ", ".join(sorted([*layout.kohya_to_peft, ALPHA]))
            raise UserError(f"{source}: key {key!r}: {weight!r} is not a {layout.kind} weight (valid: {valid})")
        weights[layout.kohya_to_peft[weight]] = value
    parts: dict[str, PartAdapter] = {}
    for name, weights in found.items():
        part, target = lookup[name]
        missing = [layout.peft_to_kohya[w] for w in layout.required if w not in weights]
        if missing:
            raise UserError(f"{source}: module {name} has no {', '.join(missing)}")
        rank = int(weights[layout.rank_weight].shape[layout.rank_dim])
        alpha = alphas.get(name, float(rank))
        if isinstance(target, str):
            members = {target: (weights, rank, alpha)}
        elif len(target.paths) == 1:
            members = {target.paths[0]: (weights, rank, alpha)}
        else:
            members = unfuse(target, weights, alpha, str(source))
        adapter = parts.setdefault(part, PartAdapter({}, {}, {}))
        for path, (member_weights, member_rank, member_alpha) in members.items():
            adapter.state.update({f"{path}.{weight}": value for weight, value in member_weights.items()})
            adapter.ranks[path] = member_rank
            adapter.alphas[path] = member_alpha
    return parts


def kohya_name(part: str, path: str, prefix: str | None = None) -> str:
    """``lora_unet_down_blocks_0_…`` / ``lora_te_text_model_encoder_…`` for module ``path`` of ``part``."""
    if part.startswith("text_encoder") and not path.startswith(TEXT_MODEL):
        path = TEXT_MODEL + path
    if prefix is None:
        prefix = PREFIXES.get(part) or TWO_ENCODER_PREFIXES[part]
    return prefix + path.replace(".", "_")


def _module_names(part: str, module: "torch.nn.Module") -> list[tuple[str, str]]:
    """``(path, name in a file)`` of every submodule: its diffusers path, and for a UNet also its
    original-layout path (``input_blocks_4_1_…``), which sd-scripts writes for SDXL LoRAs."""
    from adaptkit.interop.original_layout import unet_module_names

    paths = [path for path, _ in module.named_modules() if path]
    pairs = [(path, path) for path in paths]
    config = getattr(module, "config", None)
    if part == "unet" and config is not None and "layers_per_block" in config:
        pairs += [(path, original) for path, original in unet_module_names(paths, dict(config)).items()]
    return pairs


def common_value(values: dict[str, float]) -> float:
    """The most common value (the config default); the others become per-module patterns."""
    return Counter(values.values()).most_common(1)[0][0]


def exceptions(values: dict[str, float], default: float) -> dict[str, float]:
    """Modules whose value differs from ``default``, as peft ``rank_pattern``/``alpha_pattern`` (exact paths)."""
    import re

    return {re.escape(path): value for path, value in values.items() if value != default}


def _split(key: str, weights: dict[str, str], what: str) -> tuple[str, str]:
    for weight in weights:
        if key.endswith(f".{weight}"):
            return key[: -len(weight) - 1], weight
    raise UserError(f"{what}: weight {key!r} has no kohya name (known: {', '.join(weights)})")


def peft_shape(adapter: PartAdapter) -> tuple[dict[str, Any], float]:
    """The peft config keys that reproduce ``adapter``'s modules and ranks exactly (the common rank,
    per-module exceptions as ``rank_pattern`` / ``alpha_pattern``), and the common alpha."""
    rank = int(common_value(adapter.ranks))
    alpha = common_value(adapter.alphas)
    keys = {
        "r": rank,
        "target_modules": adapter.modules,
        "rank_pattern": exceptions(adapter.ranks, rank),
        "alpha_pattern": exceptions(adapter.alphas, alpha),
    }
    return keys, alpha
