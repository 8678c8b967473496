"""``model.quantize``: refused in one line where it cannot run (no CUDA, a single file, the full
method, a missing backend); where it can, the denoiser alone gets diffusers' quantisation config."""

from __future__ import annotations

import pytest
import torch

from adaptkit.errors import UserError
from adaptkit.models.quantize import quantization_options
from adaptkit.recipe import ModelSection

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_without_cuda_quantize_is_one_line_before_anything_loads(tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    from adaptkit.cli import main
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import write_recipe

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", model={"quantize": "nf4"}, sample={"prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.quantize = 'nf4' needs a CUDA device" in err and err.count("\n") == 1


def test_the_denoiser_alone_gets_the_quantisation_config(monkeypatch) -> None:
    from diffusers import BitsAndBytesConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = ModelSection(base="owner/model", quantize="nf4")
    options = quantization_options(model, {"unet": ["diffusers", "UNet2DConditionModel"]}, torch.bfloat16)
    config = options["quantization_config"].quant_mapping
    assert list(config) == ["unet"] and isinstance(config["unet"], BitsAndBytesConfig)
    assert config["unet"].load_in_4bit and config["unet"].bnb_4bit_quant_type == "nf4"
    assert config["unet"].bnb_4bit_compute_dtype == torch.bfloat16
    int8 = quantization_options(ModelSection(base="o/m", quantize="int8"), {"transformer": ["d", "T"]}, torch.float16)
    ((name, int8_config),) = int8["quantization_config"].quant_mapping.items()
    assert name == "transformer" and int8_config.load_in_8bit
    assert quantization_options(ModelSection(base="o/m"), {}, torch.bfloat16) == {}


def test_a_single_file_or_a_missing_backend_is_one_line(monkeypatch) -> None:
    import importlib.util

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(UserError, match=r"model.quantize = 'nf4': x.safetensors is a single file"):
        quantization_options(ModelSection(base="x.safetensors", quantize="nf4"), None, torch.bfloat16)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    with pytest.raises(UserError, match=r"model.quantize = 'fp8' needs torchao: pip install torchao"):
        quantization_options(ModelSection(base="o/m", quantize="fp8"), {"unet": ["d", "U"]}, torch.bfloat16)


def test_the_full_method_is_refused_on_a_quantised_base(tiny_model_dir, tmp_path, capsys) -> None:
    from adaptkit.cli import main
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import write_recipe

    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "full", model={"quantize": "int8"}, sample={"prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert "method full trains the base's own weights, which a quantised base cannot" in capsys.readouterr().err


@needs_cuda
def test_lora_trains_on_an_nf4_base_and_exports_only_the_adapter(tiny_model_dir, tmp_path) -> None:
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import run, write_recipe

    data = write_naruto(tmp_path / "naruto", rows=4).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", model={"quantize": "nf4"}, train={"steps": 2})
    trainer, result = run(recipe)
    assert trainer.components.unet.is_quantized and result.steps == 2
    files = list((tmp_path / "runs" / "run" / "adapter").glob("*.safetensors"))
    assert [f.name for f in files] == ["pytorch_lora_weights.safetensors"]
