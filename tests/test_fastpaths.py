"""Fast paths: torch.compile wiring, channels_last on CUDA only, SDPA by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.testing.datasets import write_naruto
from adaptkit.training import fastpaths

from training_helpers import run, write_recipe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=4).path


def test_compile_option_compiles_the_unet_that_trains(tmp_path, tiny_model_dir, data_dir, monkeypatch) -> None:
    # A real torch.compile on this CPU takes minutes (inductor builds C++); here only the wiring is checked.
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(fastpaths.torch, "compile", fake_compile)
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", train={"compile": True}, sample={"prompts": []})
    trainer, result = run(recipe)
    assert len(compiled) == 1 and compiled[0] is trainer.components.unet
    assert result.steps == 4


def test_without_compile_nothing_is_compiled(monkeypatch) -> None:
    monkeypatch.setattr(fastpaths.torch, "compile", lambda module: pytest.fail("compiled"))
    unet = torch.nn.Conv2d(4, 4, 3)
    assert fastpaths.maybe_compile(unet, False) is unet


def test_channels_last_only_on_cuda(tiny_model_dir) -> None:
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    conv = components.unet.conv_in.weight
    assert not fastpaths.use_channels_last(components, torch.device("cpu"))
    assert not conv.is_contiguous(memory_format=torch.channels_last)
    assert fastpaths.use_channels_last(components, torch.device("cuda"))  # moves no data, only the layout
    assert components.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert components.vae.encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_sdpa_is_the_default_attention(tmp_path, tiny_model_dir, data_dir) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    from adaptkit.recipe import TrainSection

    assert TrainSection().attention == "sdpa"
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", train={"steps": 1}, sample={"prompts": []})
    trainer, _ = run(recipe)
    processors = trainer.components.unet.attn_processors.values()
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors)
