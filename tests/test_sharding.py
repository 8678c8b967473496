"""FSDP pieces that run in one process: turning it on, refusals, the wrap policy, gathering and EMA shards."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from adaptkit.errors import UserError
from adaptkit.recipe import EmaSection
from adaptkit.training.sharding import (
    enable_fsdp,
    fsdp_requested,
    gathered,
    refuse_unsharded_features,
    set_wrap_policy,
)


@pytest.fixture
def one_process_mesh():
    """A one-process gloo group and its device mesh, for DTensors in a single process."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def test_fsdp_is_requested_by_accelerates_variable() -> None:
    assert fsdp_requested({"ACCELERATE_USE_FSDP": "true"}) and fsdp_requested({"ACCELERATE_USE_FSDP": "True"})
    assert not fsdp_requested({}) and not fsdp_requested({"ACCELERATE_USE_FSDP": "false"})


def test_fsdp1_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate.utils import DistributedType

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    accelerator = SimpleNamespace(
        distributed_type=DistributedType.FSDP, state=SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=1))
    )
    with pytest.raises(UserError, match="FSDP version 1: adaptkit shards with FSDP2; set fsdp_version: 2") as bad:
        enable_fsdp(accelerator)
    assert len(bad.value.lines) == 1
    accelerator.state.fsdp_plugin.fsdp_version = 2
    enable_fsdp(accelerator)  # FSDP2 passes


def test_cpu_ram_efficient_loading_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate.utils import DistributedType

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    plugin = SimpleNamespace(fsdp_version=2, cpu_ram_efficient_loading=True)
    accelerator = SimpleNamespace(distributed_type=DistributedType.FSDP, state=SimpleNamespace(fsdp_plugin=plugin))
    with pytest.raises(UserError, match="fsdp_cpu_ram_efficient_loading: adaptkit loads the base") as bad:
        enable_fsdp(accelerator)
    assert len(bad.value.lines) == 1


def test_without_the_variable_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate.utils import DistributedType

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    accelerator = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, state=SimpleNamespace())
    enable_fsdp(accelerator)
    assert accelerator.distributed_type == DistributedType.MULTI_CPU and not hasattr(accelerator.state, "fsdp_plugin")


@pytest.mark.parametrize(
    ("trains_text_encoder", "validation_every", "compile_", "message"),
    [
        (True, 0, False, "trains a text encoder, which adaptkit does not shard"),
        (False, 5, False, r"\[validation\] every: the validation loss is not computed under FSDP"),
        (False, 0, True, "train.compile with FSDP"),
    ],
)
def test_what_does_not_run_sharded_is_refused_in_one_line(
    trains_text_encoder: bool, validation_every: int, compile_: bool, message: str
) -> None:
    recipe = SimpleNamespace(
        validation=SimpleNamespace(every=validation_every), train=SimpleNamespace(compile=compile_)
    )
    method = SimpleNamespace(name="m", trains_text_encoder=trains_text_encoder)
    with pytest.raises(UserError, match=message) as bad:
        refuse_unsharded_features(recipe, method)
    assert len(bad.value.lines) == 1


def test_the_wrap_policy_is_the_familys_blocks_the_base_has_unless_the_config_names_one() -> None:
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    from adaptkit.builtins.families.sd1 import StableDiffusion1
    from adaptkit.testing.tiny_model import build_tiny_pipeline

    unet = build_tiny_pipeline().unet
    present = {type(m).__name__ for m in unet.modules()}
    plugin = SimpleNamespace(auto_wrap_policy=None, transformer_cls_names_to_wrap=None)
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))
    names = set_wrap_policy(accelerator, StableDiffusion1(), unet)
    assert names == [n for n in StableDiffusion1.fsdp_blocks if n in present] and "CrossAttnDownBlock2D" in names
    assert plugin.auto_wrap_policy is transformer_auto_wrap_policy and plugin.transformer_cls_names_to_wrap == names

    chosen = SimpleNamespace(auto_wrap_policy="the user's", transformer_cls_names_to_wrap=["X"])
    assert set_wrap_policy(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=chosen)), StableDiffusion1(), unet) == []
    assert chosen.auto_wrap_policy == "the user's" and chosen.transformer_cls_names_to_wrap == ["X"]


def test_gathered_makes_sharded_tensors_whole_and_leaves_the_rest(one_process_mesh) -> None:
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    full = torch.arange(12.0).reshape(4, 3)
    state = {"sharded": distribute_tensor(full, one_process_mesh, [Shard(0)]), "plain": full * 2, "step": 3}
    out = gathered(state)
    assert not isinstance(out["sharded"], DTensor) and torch.equal(out["sharded"], full)
    assert torch.equal(out["plain"], full * 2) and out["step"] == 3


def test_ema_of_sharded_weights_saves_whole_tensors_and_loads_them_back_into_shards(one_process_mesh) -> None:
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    from adaptkit.training.ema import EmaWeights

    param = torch.nn.Parameter(distribute_tensor(torch.ones(4, 2), one_process_mesh, [Shard(0)]))
    ema = EmaWeights([param], EmaSection(enabled=True, decay=0.5))
    with torch.no_grad():
        param.mul_(3.0)
    ema.step()
    state = ema.state_dict()
    assert not isinstance(state["shadow_params"][0], DTensor)
    expected = state["shadow_params"][0].clone()
    assert not torch.equal(expected, torch.ones(4, 2))  # the update moved it

    fresh = EmaWeights([param], EmaSection(enabled=True, decay=0.5))
    fresh.load_state_dict(state)
    shadow = fresh.model.shadow_params[0]
    assert isinstance(shadow, DTensor) and shadow.placements == param.placements
    assert torch.equal(shadow.full_tensor(), expected)
