"""Built-in methods, what is particular to each (the generic promises: test_contracts_builtin.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptkit.builtins.samplers.ddim import DDIMSampler
from adaptkit.errors import UserError
from adaptkit.models import SDComponents
from adaptkit.plugins import get_plugin_manager
from adaptkit.resolve import build_component
from adaptkit.testing.tiny_steps import load_tiny as base
from adaptkit.testing.tiny_steps import sample_images as images
from adaptkit.testing.tiny_steps import train_steps

CASES = [
    ("full", {}),
    ("full", {"train_text_encoder": True}),
    ("lora", {"rank": 4, "alpha": 2}),
    ("lora", {"rank": 2, "alpha": 8, "conv": True, "text_encoder": True, "dropout": 0.1}),
    ("loha", {"rank": 4, "alpha": 2}),
    ("loha", {"rank": 2, "conv": True, "use_effective_conv2d": True}),
]
ADAPTER_MARKERS = {"lora": ".lora_", "loha": ".hada_"}


@pytest.fixture(scope="module")
def methods():
    return get_plugin_manager().collect().methods


def make(methods, name: str, **options):
    errors: list[str] = []
    method = build_component(methods, name, options, "recipe.toml", "method.name", errors)
    assert method is not None, errors
    return method


def train_step(components: SDComponents, params: list[torch.nn.Parameter]) -> None:
    """One Adam step (lr 1e-2) of the contract tests' denoising-style loss."""
    train_steps(components, params, 1, 1e-2)


def fresh_pipeline(model_dir: Path, components: SDComponents):
    return base(model_dir).pipeline(DDIMSampler().build(dict(components.scheduler_config)))


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in CASES])
def test_prepare_trains_the_expected_weights(methods, tiny_model_dir: Path, name: str, options: dict) -> None:
    """Which weights train, per method (the generic prepare/train/save/apply promises: test_contracts_builtin)."""
    method = make(methods, name, **options)
    components = base(tiny_model_dir)
    all_before = {id(p) for m in (components.unet, components.text_encoder, components.vae) for p in m.parameters()}
    params = method.prepare(components)
    names = method.trainable_state_dict(components)
    assert len(names) == len(params)
    if name == "full":
        assert {id(p) for p in params} >= {id(p) for p in components.unet.parameters()}
        assert any(p.requires_grad for p in components.text_encoder.parameters()) == options.get(
            "train_text_encoder", False
        )
    else:
        assert not any(id(p) in all_before for p in params)
        assert all(ADAPTER_MARKERS[name] in key for key in names)
        assert any(k.startswith("text_encoder.") for k in names) == options.get("text_encoder", False)
    assert method.trains_text_encoder == any(k.startswith("text_encoder.") for k in names)


def test_full_result_is_a_diffusers_pipeline(methods, tiny_model_dir: Path, tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    method, components = make(methods, "full"), base(tiny_model_dir)
    train_step(components, method.prepare(components))
    method.save(components, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.bin"))
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path / "out", use_safetensors=True)
    assert torch.equal(loaded.unet.conv_in.weight, components.unet.conv_in.weight)
    assert type(loaded.scheduler).__name__ == "DDPMScheduler"


@pytest.mark.parametrize("conv", [False, True])
def test_lora_loads_with_diffusers_own_loader_and_keeps_alpha(
    methods, tiny_model_dir: Path, tmp_path: Path, conv: bool
) -> None:
    method, components = make(methods, "lora", rank=4, alpha=2, conv=conv), base(tiny_model_dir)
    train_step(components, method.prepare(components))
    trained = images(components.pipeline(DDIMSampler().build(dict(components.scheduler_config))))
    method.save(components, tmp_path)
    pipe = fresh_pipeline(tiny_model_dir, components)
    pipe.load_lora_weights(tmp_path)
    config = next(iter(pipe.unet.peft_config.values()))
    assert (config.r, config.lora_alpha) == (4, 2)
    assert np.abs(images(pipe) - trained).max() <= 1e-5  # float32 noise of batched generation
    # without the saved alpha diffusers would assume alpha = rank (scale 1 instead of 0.5)
    from safetensors.torch import load_file, save_file

    save_file(load_file(tmp_path / "pytorch_lora_weights.safetensors"), tmp_path / "no_meta.safetensors")
    pipe = fresh_pipeline(tiny_model_dir, components)
    pipe.load_lora_weights(tmp_path, weight_name="no_meta.safetensors")
    assert np.abs(images(pipe) - trained).max() > 1e-6


def _transformers_peft_integration_works() -> bool:
    import importlib.metadata

    from packaging.version import Version
    from transformers.integrations import peft as transformers_peft

    return Version(importlib.metadata.version("peft")) >= Version(transformers_peft.MIN_PEFT_VERSION)


@pytest.mark.skipif(not _transformers_peft_integration_works(), reason="transformers' load_adapter needs a newer peft")
def test_text_encoder_lora_loads_with_diffusers_own_loader(methods, tiny_model_dir: Path, tmp_path: Path) -> None:
    method, components = make(methods, "lora", alpha=2, text_encoder=True), base(tiny_model_dir)
    train_step(components, method.prepare(components))
    trained = images(components.pipeline(DDIMSampler().build(dict(components.scheduler_config))))
    method.save(components, tmp_path)
    pipe = fresh_pipeline(tiny_model_dir, components)
    pipe.load_lora_weights(tmp_path)
    assert np.abs(images(pipe) - trained).max() <= 1e-5  # float32 noise of batched generation


@pytest.fixture(scope="module")
def loha_dir(methods, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    method, components = make(methods, "loha"), base(tiny_model_dir)
    method.prepare(components)
    out = tmp_path_factory.mktemp("loha")
    method.save(components, out)
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    return out


def apply_error(methods, tiny_model_dir: Path, name: str, folder: Path) -> str:
    with pytest.raises(UserError) as info:
        make(methods, name).apply(base(tiny_model_dir).pipeline(DDIMSampler().build({})), folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loha_refuses_a_file_that_is_not_safetensors(
    methods, tiny_model_dir: Path, loha_dir: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(loha_dir, tmp_path / "bad")
    (folder / "adapter_model.safetensors").write_bytes(b"\x80\x04pickled tensors")
    message = apply_error(methods, tiny_model_dir, "loha", folder)
    assert str(folder / "adapter_model.safetensors") in message and "safetensors" in message
    (folder / "adapter_model.safetensors").unlink()
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04")
    assert str(folder / "adapter_model.bin") in apply_error(methods, tiny_model_dir, "loha", folder)


def test_loha_refuses_an_adapter_for_another_architecture(methods, tiny_model_dir: Path, tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    config = dict(UNet2DConditionModel.load_config(tiny_model_dir / "unet"))
    other = UNet2DConditionModel.from_config({**config, "block_out_channels": (16, 16, 32, 32)})
    from adaptkit.models import SDComponents

    components = SDComponents(other, torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), None, None, {}, "other", None)
    method = make(methods, "loha")
    method.prepare(components)
    method.save(components, tmp_path)
    message = apply_error(methods, tiny_model_dir, "loha", tmp_path)
    assert str(tmp_path / "adapter_model.safetensors") in message and "do not fit the UNet" in message
    json_path = tmp_path / "adapter_config.json"
    json_path.write_text(json.dumps({**json.loads(json_path.read_text()), "target_modules": ["no_such_layer"]}))
    assert "does not fit the UNet" in apply_error(methods, tiny_model_dir, "loha", tmp_path)


def test_loha_refuses_a_lora_config(methods, tiny_model_dir: Path, loha_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(loha_dir, tmp_path / "lora-config")
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["to_q"]}))
    assert "LoraConfig adapter, expected a LoHaConfig" in apply_error(methods, tiny_model_dir, "loha", folder)


def test_unknown_target_module_is_an_options_error(methods, tiny_model_dir: Path) -> None:
    method = make(methods, "lora", target_modules=["to_qq"])
    with pytest.raises(UserError, match=r"^method.options.target_modules: .*to_qq"):
        method.prepare(base(tiny_model_dir))
