"""Adapters on fused kohya modules (one module standing for several diffusers modules, as Flux's
q/k/v): fusing and splitting keep every member's update exactly, for LoRA and LoHa, for files
written block-diagonal (by adaptkit) and dense (trained fused, as sd-scripts does)."""

from __future__ import annotations

import pytest
import torch

from adaptkit.component import KohyaModule
from adaptkit.errors import UserError
from adaptkit.interop.fused_modules import fuse, unfuse

QKV = KohyaModule("blocks_0_qkv", ("attn.to_q", "attn.to_k", "attn.to_v", "mlp"), (6, 6, 6, 10))


def lora(out_features: int, rank: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "lora_A.weight": torch.randn(rank, 5, generator=g),
        "lora_B.weight": torch.randn(out_features, rank, generator=g),
    }


def lora_delta(weights: dict[str, torch.Tensor], scale: float) -> torch.Tensor:
    return scale * weights["lora_B.weight"] @ weights["lora_A.weight"]


def loha_delta(weights: dict[str, torch.Tensor], scale: float) -> torch.Tensor:
    w = weights
    return scale * (w["hada_w1_a"] @ w["hada_w1_b"]) * (w["hada_w2_a"] @ w["hada_w2_b"])


def test_a_fused_lora_has_each_members_update_and_zero_rows_for_the_rest() -> None:
    members = {"attn.to_q": lora(6, 3, 0), "attn.to_v": lora(6, 3, 1)}
    fused, alpha = fuse(QKV, members, alpha=1.5)
    assert fused["lora_A.weight"].shape == (6, 5) and fused["lora_B.weight"].shape == (28, 6)
    assert alpha == pytest.approx(3.0)  # alpha / rank kept: 1.5 / 3 == 3.0 / 6
    rows = torch.split(lora_delta(fused, alpha / 6), [6, 6, 6, 10])
    torch.testing.assert_close(rows[0], lora_delta(members["attn.to_q"], 0.5))
    torch.testing.assert_close(rows[2], lora_delta(members["attn.to_v"], 0.5))
    assert not rows[1].any() and not rows[3].any()


def test_splitting_gives_back_the_members_ranks_alphas_and_weights() -> None:
    members = {"attn.to_q": lora(6, 3, 0), "attn.to_k": lora(6, 3, 2), "mlp": lora(10, 3, 3)}
    fused, alpha = fuse(QKV, members, alpha=6.0)
    split = unfuse(QKV, fused, alpha, "f.safetensors")
    assert sorted(split) == ["attn.to_k", "attn.to_q", "mlp"]  # to_v had no adapter: left out
    for path, (weights, rank, member_alpha) in split.items():
        assert (rank, member_alpha) == (3, 6.0)
        assert all(torch.equal(weights[name], members[path][name]) for name in weights)


def test_a_dense_fused_file_splits_exactly_with_the_full_rank() -> None:
    """A LoRA trained on the fused module (every member uses every rank column) splits into members
    whose updates are the fused update's rows."""
    weights = lora(28, 4, 5)
    split = unfuse(QKV, weights, alpha=2.0, where="f.safetensors")
    rows = torch.split(lora_delta(weights, 2.0 / 4), [6, 6, 6, 10])
    for row, path in zip(rows, QKV.paths):
        member, rank, alpha = split[path]
        assert rank == 4 and alpha == 2.0
        torch.testing.assert_close(lora_delta(member, alpha / rank), row)


def test_loha_fuses_and_splits_exactly() -> None:
    def loha(out_features: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {
            "hada_w1_a": torch.randn(out_features, 2, generator=g),
            "hada_w1_b": torch.randn(2, 5, generator=g),
            "hada_w2_a": torch.randn(out_features, 2, generator=g),
            "hada_w2_b": torch.randn(2, 5, generator=g),
        }

    members = {"attn.to_k": loha(6, 0), "mlp": loha(10, 1)}
    fused, alpha = fuse(QKV, members, alpha=4.0)
    rows = torch.split(loha_delta(fused, alpha / 4), [6, 6, 6, 10])
    torch.testing.assert_close(rows[1], loha_delta(members["attn.to_k"], 2.0))
    torch.testing.assert_close(rows[3], loha_delta(members["mlp"], 2.0))
    assert not rows[0].any() and not rows[2].any()
    split = unfuse(QKV, fused, alpha, "f.safetensors")
    assert sorted(split) == ["attn.to_k", "mlp"]
    torch.testing.assert_close(loha_delta(split["mlp"][0], split["mlp"][2] / split["mlp"][1]), rows[3])


def test_a_fused_module_of_the_wrong_height_is_one_line_naming_it() -> None:
    with pytest.raises(
        UserError, match=r"f.safetensors: blocks_0_qkv.lora_B.weight has 27 rows; the model's .* have 28"
    ):
        unfuse(QKV, lora(27, 2, 0), alpha=2.0, where="f.safetensors")


def test_a_fused_layout_entry_needs_a_width_per_member() -> None:
    with pytest.raises(ValueError, match="one width per path"):
        KohyaModule("qkv", ("q", "k"), (4,))
