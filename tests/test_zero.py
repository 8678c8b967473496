"""DeepSpeed pieces that run in one process: turning it on, the config filled from the recipe, the
refusals, and the checkpoint's sharding record (the two-process runs are in test_multiprocess.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adaptkit.builtins.optimizers import AdamW
from adaptkit.builtins.optimizers.prodigy import ProdigyOptimizer
from adaptkit.errors import UserError
from adaptkit.recipe import TrainSection
from adaptkit.training.sharded_checkpoint import load_shards, refuse_sharded_checkpoint
from adaptkit.training.zero import (
    accelerator_device_options,
    configure_deepspeed,
    deepspeed_requested,
    full_parameters,
    full_shape,
    settle_accumulation_setting,
)


def _accelerator(stage: int = 2, processes: int = 2, **config) -> SimpleNamespace:
    from accelerate.utils import DistributedType

    plugin = SimpleNamespace(zero_stage=stage, deepspeed_config=dict(config))
    return SimpleNamespace(
        distributed_type=DistributedType.DEEPSPEED,
        num_processes=processes,
        state=SimpleNamespace(deepspeed_plugin=plugin),
    )


def _train(**values) -> TrainSection:
    return TrainSection(**{"batch_size": 4, "gradient_accumulation": 2, "max_grad_norm": 1.0, **values})


def test_deepspeed_is_requested_by_accelerates_variable() -> None:
    assert deepspeed_requested({"ACCELERATE_USE_DEEPSPEED": "true"})
    assert not deepspeed_requested({}) and not deepspeed_requested({"ACCELERATE_USE_DEEPSPEED": "false"})


def test_a_cpu_deepspeed_launch_names_gloo_and_other_launches_keep_cpu_true() -> None:
    assert accelerator_device_options(cuda=False, environ={}) == {"cpu": True}
    assert accelerator_device_options(cuda=True, environ={"ACCELERATE_USE_DEEPSPEED": "true"}) == {"cpu": False}
    options = accelerator_device_options(cuda=False, environ={"ACCELERATE_USE_DEEPSPEED": "true"})
    assert options["cpu"] is False and options["kwargs_handlers"][0].backend == "gloo"


def test_a_deepspeed_launch_without_deepspeed_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(UserError, match="asks for DeepSpeed .* not installed; pip install wheel") as missing:
        accelerator_device_options(cuda=False, environ={"ACCELERATE_USE_DEEPSPEED": "true"})
    assert len(missing.value.lines) == 1


def test_the_config_is_filled_from_the_recipe_where_it_says_auto() -> None:
    accelerator = _accelerator(gradient_accumulation_steps="auto", gradient_clipping="auto")
    configure_deepspeed(accelerator, _train(), AdamW())
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    assert config["train_micro_batch_size_per_gpu"] == 4
    assert config["gradient_accumulation_steps"] == 2
    assert config["gradient_clipping"] == 1.0
    assert config["train_batch_size"] == 4 * 2 * 2  # batch × accumulation × processes

    unclipped = _accelerator()
    configure_deepspeed(unclipped, _train(max_grad_norm=None), AdamW())
    assert unclipped.state.deepspeed_plugin.deepspeed_config["gradient_clipping"] == 0.0  # DeepSpeed: no clipping


def test_a_config_value_that_disagrees_with_the_recipe_is_refused_naming_both() -> None:
    with pytest.raises(UserError, match=r"train_micro_batch_size_per_gpu = 8 disagrees with .*train.batch_size = 4"):
        configure_deepspeed(_accelerator(train_micro_batch_size_per_gpu=8), _train(), AdamW())
    with pytest.raises(UserError, match=r"gradient_accumulation_steps = 4 disagrees .*train.gradient_accumulation"):
        configure_deepspeed(_accelerator(gradient_accumulation_steps=4), _train(), AdamW())
    configure_deepspeed(_accelerator(gradient_accumulation_steps=2, gradient_clipping=1), _train(), AdamW())


@pytest.mark.parametrize(
    ("accelerator", "optimizer", "message"),
    [
        (_accelerator(stage=1), AdamW(), "zero_stage 1: adaptkit runs ZeRO stages 2 and 3"),
        (_accelerator(bf16={"enabled": True}), AdamW(), "DeepSpeed with bf16: adaptkit trains in fp32 under DeepSpeed"),
        (
            _accelerator(),
            ProdigyOptimizer(),
            "'prodigy' under DeepSpeed ZeRO: ZeRO hands the optimizer flat partitions",
        ),
        (
            _accelerator(zero_optimization={"offload_optimizer": {"device": "cpu"}}),
            AdamW(),
            "offload_optimizer: ZeRO-Offload needs DeepSpeed's own CPU Adam",
        ),
    ],
)
def test_what_adaptkit_does_not_run_under_deepspeed_is_refused_in_one_line(accelerator, optimizer, message) -> None:
    with pytest.raises(UserError, match=message) as refused:
        configure_deepspeed(accelerator, _train(), optimizer)
    assert len(refused.value.lines) == 1


def test_the_launchers_accumulation_auto_is_dropped_and_a_number_must_match_the_recipe() -> None:
    env = {"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "auto"}
    settle_accumulation_setting(2, env)
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env  # accelerate 1.15 would int() it
    settle_accumulation_setting(2, {"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "2"})
    settle_accumulation_setting(2, {})
    with pytest.raises(UserError, match=r"gradient_accumulation_steps = 4 disagrees with .* = 2; set it to 'auto'"):
        settle_accumulation_setting(2, {"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "4"})


def test_unpartitioned_weights_are_left_alone() -> None:
    weight = torch.nn.Parameter(torch.ones(3, 2))
    assert full_shape(weight) == (3, 2)
    with full_parameters([weight], modify=True):
        weight.data.mul_(2)
    assert torch.equal(weight.data, torch.full((3, 2), 2.0))
    partitioned = torch.nn.Parameter(torch.empty(0))
    partitioned.ds_id, partitioned.ds_shape = 7, torch.Size([3, 2])
    assert full_shape(partitioned) == (3, 2)  # the whole shape, which EMA checks compare against


def test_a_checkpoint_is_resumed_only_by_the_backend_and_stage_that_wrote_it(tmp_path: Path) -> None:
    zero2 = {"sharded": {"backend": "DEEPSPEED", "processes": 2, "zero_stage": 2}}
    with pytest.raises(UserError, match="sharded by DeepSpeed ZeRO-2, this run by DeepSpeed ZeRO-3") as bad:
        load_shards(_accelerator(stage=3), tmp_path, zero2)
    assert len(bad.value.lines) == 1
    with pytest.raises(UserError, match="sharded by FSDP, this run by DeepSpeed ZeRO-2"):
        load_shards(_accelerator(stage=2), tmp_path, {"sharded": {"backend": "FSDP", "processes": 2}})
    with pytest.raises(UserError, match="sharded over 2 processes, this run has 4"):
        load_shards(_accelerator(stage=2, processes=4), tmp_path, zero2)
    with pytest.raises(UserError, match="written by a run without DeepSpeed"):
        load_shards(_accelerator(), tmp_path, {})
    with pytest.raises(UserError, match="sharded by DeepSpeed ZeRO-2 over 2 processes; resume it with the same"):
        refuse_sharded_checkpoint(tmp_path, zero2)
