"""adaptkit-lokr: adaptkit's contract tests for both methods, plus what is particular to LoKr and OFT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from adaptkit import UserError
from adaptkit.testing.contracts import MethodContract, build

from adaptkit_lokr import LokrMethod, OftMethod


class TestLokrContract(MethodContract):
    component = LokrMethod
    options = {"rank": 4, "alpha": 2}
    bad_options = [
        ({"rank": 0}, "method.options.rank"),
        ({"decompose_factor": -2}, "method.options.decompose_factor"),
        ({"init_from": "kohya.safetensors"}, "method.options.init_from: only the lora and loha"),
    ]


class TestLokrConvContract(MethodContract):
    component = LokrMethod
    options = {"rank": 2, "conv": True, "decompose_both": True, "decompose_factor": 4}


class TestOftContract(MethodContract):
    component = OftMethod
    options = {"rank": 4}
    bad_options = [
        ({"alpha": 4}, "method.options.alpha: OFT has no alpha"),
        ({"eps": 0}, "method.options.eps"),
    ]


@pytest.fixture
def components(tiny_model_dir: Path):
    from adaptkit.testing.tiny_steps import load_tiny

    return load_tiny(tiny_model_dir)


def test_lokr_options_reach_peft(components) -> None:
    method = build(LokrMethod, {"rank": 2, "alpha": 1, "decompose_both": True, "conv": True}, "method.name")
    method.prepare(components)
    config = components.unet.peft_config["default"]
    assert type(config).__name__ == "LoKrConfig"
    assert (config.r, config.alpha, config.decompose_both) == (2, 1.0, True)
    assert {"to_q", "to_k", "to_v", "to_out.0", "conv1", "proj_in"} <= set(config.target_modules)
    keys = method.trainable_state_dict(components)
    assert keys and all(".lokr_" in key for key in keys)
    assert any("lokr_w1_a" in key for key in keys)  # decompose_both splits the left factor


def test_oft_rotation_stays_orthogonal_after_training(components) -> None:
    """OFT multiplies weights by a block-diagonal orthogonal matrix: R^T R = I before and after training."""
    from adaptkit.testing.tiny_steps import train_steps

    method = build(OftMethod, {"rank": 4}, "method.name")
    params = method.prepare(components)
    layer = components.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1.to_q
    before = layer.get_delta_weight("default").detach().clone()
    train_steps(components, params, 2, 1e-2)
    rotation = layer.get_delta_weight("default").detach()
    assert not torch.allclose(rotation, before), "training must rotate"
    eye = torch.eye(rotation.shape[0])
    assert torch.allclose(rotation.T @ rotation, eye, atol=1e-4)
    blocks = rotation.shape[0] // 4
    assert torch.count_nonzero(rotation[:blocks, blocks:]) == 0  # block-diagonal, rank = 4 blocks


def test_applying_a_lokr_result_as_oft_is_a_user_error(components, tiny_model_dir: Path, tmp_path: Path) -> None:
    from adaptkit.testing.tiny_steps import load_tiny
    from diffusers import DDIMScheduler

    lokr = build(LokrMethod, {}, "method.name")
    lokr.prepare(components)
    lokr.save(components, tmp_path)
    fresh = load_tiny(tiny_model_dir)
    with pytest.raises(UserError, match="a LoKrConfig adapter, expected a OFTConfig"):
        build(OftMethod, {}, "method.name").apply(
            fresh.pipeline(DDIMScheduler.from_config(fresh.scheduler_config)), tmp_path
        )
