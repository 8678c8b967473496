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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.errors import UserError

if TYPE_CHECKING:
    import torch

#: Part of the pipeline -> kohya prefix written for a model with one text encoder.
PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
#: ... and for a model with two (kohya's ``lora_te1_``/``lora_te2_``, which A1111, Forge and ComfyUI read).
TWO_ENCODER_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}
#: Every prefix a part is read from (a one-encoder file written as ``lora_te1_`` loads too).
READ_PREFIXES = {"unet": ["lora_unet_"], "text_encoder": ["lora_te_", "lora_te1_"], "text_encoder_2": ["lora_te2_"]}
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
    parts: dict[str, dict[str, "torch.Tensor"]], alphas: dict[str, float], layout: Layout
) -> dict[str, "torch.Tensor"]:
    """peft state dicts by part (``unet``, ``text_encoder``) -> one kohya state dict with per-module alphas."""
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
        for key, value in state.items():
            module, weight = _split(key, layout.peft_to_kohya, f"{part} adapter")
            name = kohya_name(part, module, prefixes[part])
            out[f"{name}.{layout.peft_to_kohya[weight]}"] = value
            out[f"{name}.{ALPHA}"] = torch.tensor(float(alphas[part]))
    return out


def from_kohya(
    state: dict[str, "torch.Tensor"], modules: dict[str, "torch.nn.Module"], layout: Layout, source: Path
) -> dict[str, PartAdapter]:
    """A kohya state dict -> peft state dicts, ranks and alphas by part, resolved against ``modules``.

    Every key must name a module of ``modules[part]`` and a weight of ``layout``; otherwise a
    one-line UserError names the key. A module without an ``alpha`` gets alpha = rank (scale 1), as
    in sd-scripts.
    """
    lookup = {
        kohya_name(part, name, prefix): (part, path)
        for part, module in modules.items()
        for prefix in READ_PREFIXES[part]
        for path, name in _module_names(part, module)
    }
    parts: dict[str, PartAdapter] = {}
    alphas: dict[tuple[str, str], float] = {}
    seen: dict[tuple[str, str], set[str]] = {}
    for key, value in state.items():
        name, _, weight = key.partition(".")
        if name not in lookup:
            raise UserError(f"{source}: key {key!r} names no module of the model (expected lora_unet_… or lora_te_…)")
        part, path = lookup[name]
        adapter = parts.setdefault(part, PartAdapter({}, {}, {}))
        weights = seen.setdefault((part, path), set())
        if weight == ALPHA:
            alphas[(part, path)] = float(value.item())
            continue
        if weight not in layout.kohya_to_peft:
            valid = ", ".join(sorted([*layout.kohya_to_peft, ALPHA]))
            raise UserError(f"{source}: key {key!r}: {weight!r} is not a {layout.kind} weight (valid: {valid})")
        peft_weight = layout.kohya_to_peft[weight]
        weights.add(peft_weight)
        adapter.state[f"{path}.{peft_weight}"] = value
        if peft_weight == layout.rank_weight:
            adapter.ranks[path] = int(value.shape[layout.rank_dim])
    for (part, path), weights in seen.items():
        missing = [layout.peft_to_kohya[w] for w in layout.required if w not in weights]
        if missing:
            raise UserError(f"{source}: module {kohya_name(part, path)} has no {', '.join(missing)}")
        parts[part].alphas[path] = alphas.get((part, path), float(parts[part].ranks[path]))
    return parts


def kohya_name(part: str, path: str, prefix: str | None = None) -> str:
    """``lora_unet_down_blocks_0_…`` / ``lora_te_text_model_encoder_…`` for module ``path`` of ``part``."""
    if part.startswith("text_encoder") and not path.startswith(TEXT_MODEL):
        path = TEXT_MODEL + path
    return (prefix or PREFIXES.get(part) or TWO_ENCODER_PREFIXES[part]) + path.replace(".", "_")


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
