"""``adaptkit import`` and ``init_from``: kohya/LyCORIS files back into adaptkit, for sampling and training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.errors import UserError
from adaptkit.interop.export import export_run
from adaptkit.interop.peft_files import adapter_state_dict
from adaptkit.testing.datasets import write_naruto

from training_helpers import make_trainer, run, write_recipe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=4).path


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    """A kohya LoRA exported from a 2-step run adapting the UNet (attention + convs) and the text encoder."""
    folder = tmp_path_factory.mktemp("lora")
    options = {"rank": 4, "alpha": 8, "conv": True, "text_encoder": True, "init_weights": False}
    recipe = write_recipe(
        folder,
        tiny_model_dir,
        data_dir,
        "lora",
        method={"options": options},
        train={"steps": 2},
        sample={"prompts": []},
    )
    run(recipe)
    return export_run(folder / "runs" / "run", "kohya")


@pytest.fixture(scope="module")
def loha_file(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("loha")
    options = {"rank": 2, "alpha": 1, "target_modules": ["to_q", "to_v"], "init_weights": False}
    recipe = write_recipe(
        folder,
        tiny_model_dir,
        data_dir,
        "loha",
        method={"options": options},
        train={"steps": 2},
        sample={"prompts": []},
    )
    run(recipe)
    return export_run(folder / "runs" / "run", "kohya")


def deltas(pipeline) -> dict[str, torch.Tensor]:
    """ΔW of every adapted module of the UNet and text encoder, by name."""
    found = {}
    for part in ("unet", "text_encoder"):
        for name, module in getattr(pipeline, part).named_modules():
            names = list(getattr(module, "scaling", {}))  # "default", or "default_0" from diffusers' loader
            if names:
                assert len(names) == 1, names
                found[f"{part}.{name}"] = module.get_delta_weight(names[0])
    return found


def apply_run(run_dir: Path, model_dir: Path):
    from adaptkit.builtins.samplers.ddim import DDIMSampler
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.sampling.pipeline import load_pipeline

    return load_pipeline(ModelSection(base=str(model_dir)), DDIMSampler(), get_plugin_manager().collect(), run_dir)


@pytest.mark.parametrize("kind", ["lora", "loha"])
def test_export_import_gives_the_same_delta_w(kind, lora_file, loha_file, tiny_model_dir, tmp_path, capsys) -> None:
    file = {"lora": lora_file, "loha": loha_file}[kind]
    out = tmp_path / "imported"
    assert main(["import", str(file), "--base", str(tiny_model_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"imported a {kind}" in printed and "init_from" in printed
    original = deltas(apply_run(file.parents[1], tiny_model_dir))
    imported = deltas(apply_run(out, tiny_model_dir))
    assert original.keys() == imported.keys() and len(original) > 10
    assert any(key.startswith("text_encoder.") for key in original) == (kind == "lora")
    for key, value in original.items():
        torch.testing.assert_close(imported[key], value, atol=0, rtol=0)
    from adaptkit.run import read_run_recipe

    assert read_run_recipe(out).train.steps == 2  # from the file's header
    # the imported folder samples and exports like a run
    assert (
        main(["sample", "--adapter", str(out), "--prompt", "a cat", "--steps", "2", "--out", str(out / "s.png")]) == 0
    )
    assert main(["export", str(out), "--format", "kohya"]) == 0


def test_import_shortens_targets_when_exact(loha_file, tiny_model_dir) -> None:
    from adaptkit.interop.importer import method_options, read_adapter_file
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    imported = read_adapter_file(loha_file, {"unet": components.unet, "text_encoder": components.text_encoder})
    assert method_options(imported) == {"rank": 2, "alpha": 1.0, "target_modules": ["to_q", "to_v"]}


def test_continued_training_starts_from_the_imported_weights(lora_file, tiny_model_dir, data_dir, tmp_path) -> None:
    from adaptkit.interop.importer import method_options, read_adapter_file
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    imported = read_adapter_file(lora_file, {"unet": components.unet, "text_encoder": components.text_encoder})
    options = {**method_options(imported), "init_from": str(lora_file)}
    assert options["text_encoder"] is True and "conv1" in options["target_modules"]
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, "lora", method={"options": options}, sample={"prompts": []}
    )
    trainer = make_trainer(recipe)
    try:
        for part in ("unet", "text_encoder"):
            loaded = adapter_state_dict(getattr(trainer.components, part))
            expected = imported.parts[part].state
            assert loaded.keys() == expected.keys()
            assert all(torch.equal(loaded[k], expected[k].float()) for k in loaded), part
        before = {k: v.clone() for k, v in trainer.method.trainable_state_dict(trainer.components).items()}
        trainer.train()
        after = trainer.method.trainable_state_dict(trainer.components)
        assert any(not torch.equal(before[k], after[k]) for k in before)  # and it trains on from there
    finally:
        trainer.cleanup()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rank": 2}, "size mismatch|alpha/rank"),
        ({"alpha": 1}, "alpha/rank 2 in the file, 0.25 in the recipe"),
        ({"target_modules": ["to_q"]}, "adapts .* UNet modules, the recipe"),
    ],
)
def test_init_from_that_does_not_fit_is_a_user_error(change, message, lora_file, tiny_model_dir, data_dir, tmp_path):
    options = {"rank": 4, "alpha": 8, "conv": True, "text_encoder": True, "init_from": str(lora_file), **change}
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, "lora", method={"options": options}, sample={"prompts": []}
    )
    with pytest.raises(UserError, match=f"method.options.init_from .*({message})"):
        make_trainer(recipe).cleanup()


def test_a_file_that_is_no_adapter_is_a_user_error(tiny_model_dir, tmp_path, capsys) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"lora_unet_x.lokr_w1": torch.zeros(2, 2)}, str(bad))
    assert main(["import", str(bad), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o")]) == 2
    assert "not a kohya LoRA" in capsys.readouterr().err
    save_file({"lora_unet_nowhere.lora_down.weight": torch.zeros(2, 2)}, str(bad))
    assert main(["import", str(bad), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o")]) == 2
    assert "'lora_unet_nowhere.lora_down.weight' names no module" in capsys.readouterr().err
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    save_file({f"{name}.lora_down.weight": torch.zeros(2, 32), f"{name}.alpha": torch.tensor(2.0)}, str(bad))
    assert main(["import", str(bad), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o")]) == 2
    assert f"module {name} has no lora_up.weight" in capsys.readouterr().err
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    save_file({f"{te}.lora_down.weight": torch.zeros(2, 32), f"{te}.lora_up.weight": torch.zeros(32, 2)}, str(bad))
    assert main(["import", str(bad), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o")]) == 2
    assert "adapts no UNet module" in capsys.readouterr().err
