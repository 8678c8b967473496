"""Adapters on fused modules: one kohya module standing for several diffusers modules (Flux's
``img_attn_qkv`` for ``to_q``, ``to_k``, ``to_v``), in both directions, exactly.

A low-rank update ``ΔW_i = up_i @ down_i`` per member becomes one update of the fused module, whose
output rows are the members' concatenated: the ``down`` factors stacked (rank R = Σ r_i) and the
``up`` factors block-diagonal, a member without an adapter as zero rows. LoHa's two factor pairs
fuse the same way, since each row block of a Hadamard product of block-diagonal products is the
member's own. The scale alpha/rank is kept by giving the fused module alpha · R / r.

Reading splits the ``up`` rows by member width and keeps, for each member, the rank columns it
uses (all of them for a file trained fused, as sd-scripts' Flux LoRAs are): still exact, since
the other columns are zero in its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptkit.errors import UserError

if TYPE_CHECKING:
    import torch

    from adaptkit.component import KohyaModule

#: peft weights whose rows are the rank (stacked when fused), and whose columns are (block-diagonal).
DOWN_WEIGHTS = ("lora_A.weight", "hada_w1_b", "hada_w2_b")
UP_WEIGHTS = ("lora_B.weight", "hada_w1_a", "hada_w2_a")


def fuse(
    module: "KohyaModule", members: dict[str, dict[str, "torch.Tensor"]], alpha: float
) -> tuple[dict[str, "torch.Tensor"], float]:
    """The fused module's peft-named weights and alpha, from ``members`` (path -> weight name -> tensor;
    the adapted members only), which share ``alpha`` and one rank."""
    import torch

    adapted = [path for path in module.paths if path in members]
    names = sorted(next(iter(members.values())))
    other = [name for name in names if name not in DOWN_WEIGHTS + UP_WEIGHTS]
    if other:
        raise UserError(f"{module.name}: a fused kohya module cannot hold {other[0]} (a convolution's factor)")
    ranks = {path: members[path][names[0]].shape[0 if names[0] in DOWN_WEIGHTS else 1] for path in adapted}
    rank = next(iter(ranks.values()))
    total = sum(ranks.values())
    fused: dict[str, torch.Tensor] = {}
    for name in names:
        if name in DOWN_WEIGHTS:
            fused[name] = torch.cat([members[path][name] for path in adapted], dim=0)
            continue
        sample = members[adapted[0]][name]
        rows, column = [], 0
        for path, width in zip(module.paths, module.widths or ()):
            block = sample.new_zeros(width, total)
            if path in members:
                block[:, column : column + ranks[path]] = members[path][name]
                column += ranks[path]
            rows.append(block)
        fused[name] = torch.cat(rows, dim=0)
    return fused, alpha * total / rank


def unfuse(
    module: "KohyaModule", weights: dict[str, "torch.Tensor"], alpha: float, where: str
) -> dict[str, tuple[dict[str, "torch.Tensor"], int, float]]:
    """Each member's ``(peft-named weights, rank, alpha)`` from a fused module's ``weights``; members
    whose rows are all zero (no update) are left out. ``where`` names the file in errors."""
    import torch

    ups = [name for name in weights if name in UP_WEIGHTS]
    downs = [name for name in weights if name in DOWN_WEIGHTS]
    if not ups or len(ups) + len(downs) != len(weights):
        raise UserError(f"{where}: fused module {module.name} holds {sorted(weights)}, not low-rank factors")
    widths = list(module.widths or ())
    total_rank = weights[downs[0]].shape[0]
    for name in ups:
        if weights[name].shape[0] != sum(widths):
            raise UserError(
                f"{where}: {module.name}.{name} has {weights[name].shape[0]} rows; the model's "
                f"{', '.join(module.paths)} have {sum(widths)}"
            )
    split = {name: torch.split(weights[name], widths, dim=0) for name in ups}
    members: dict[str, tuple[dict[str, torch.Tensor], int, float]] = {}
    for index, path in enumerate(module.paths):
        used = torch.zeros(total_rank, dtype=torch.bool)
        for name in ups:
            used |= split[name][index].ne(0).any(dim=0).cpu()
        columns = used.nonzero().flatten()
        if len(columns) == 0:
            continue
        state = {name: split[name][index][:, columns].contiguous() for name in ups}
        state.update({name: weights[name][columns].contiguous() for name in downs})
        members[path] = (state, len(columns), alpha * len(columns) / total_rank)
    return members
