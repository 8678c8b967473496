"""``adaptkit export``: every format reloads into the same model (kohya LoRA through diffusers' own
loader, LyCORIS LoHa back to peft, single-file through ``from_single_file``), with header metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.errors import UserError
from adaptkit.interop.export import export_run
from adaptkit.testing.datasets import write_naruto

from training_helpers import run, write_recipe

PROMPT = "a red cat on the moon"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=4).path


def train(folder: Path, model_dir: Path, data_dir: Path, method: str, **options) -> Path:
    """Two training steps of ``method`` (no sample grids); returns the run directory."""
    recipe = write_recipe(
        folder,
        model_dir,
        data_dir,
        method,
        name=method,
        method={"options": options},
        train={"steps": 2},
        sample={"prompts": []},
    )
    run(recipe)
    return folder / "runs" / method


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    # random B (init_weights=false): the adapter changes the images clearly after two steps
    options = {"rank": 4, "alpha": 2, "conv": True, "text_encoder": True, "init_weights": False}
    return train(tmp_path_factory.mktemp("lora"), tiny_model_dir, data_dir, "lora", **options)


@pytest.fixture(scope="module")
def loha_run(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    options = {"rank": 2, "alpha": 3, "conv": True, "use_effective_conv2d": True, "init_weights": False}
    return train(tmp_path_factory.mktemp("loha"), tiny_model_dir, data_dir, "loha", **options)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    return train(tmp_path_factory.mktemp("full"), tiny_model_dir, data_dir, "full", train_text_encoder=True)


def base_pipeline(model_dir: Path):
    from diffusers import DDIMScheduler

    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    components = load_base_model(ModelSection(base=str(model_dir)))
    return components.pipeline(DDIMScheduler.from_config(components.scheduler_config))


def images(pipeline) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    out = pipeline(PROMPT, num_inference_steps=3, guidance_scale=2.0, generator=generator, output_type="pt")
    return out.images


def native_pipeline(run_dir: Path, model_dir: Path):
    """The base pipeline with the run's result applied by its own method (as ``adaptkit sample`` does)."""
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.resolve import build_component
    from adaptkit.run import read_run_recipe

    recipe = read_run_recipe(run_dir)
    methods = get_plugin_manager().collect().methods
    method = build_component(methods, recipe.method.name, recipe.method.options, "r", "method.name", [])
    return method.apply(base_pipeline(model_dir), run_dir / "adapter")


def native_images(run_dir: Path, model_dir: Path) -> torch.Tensor:
    return images(native_pipeline(run_dir, model_dir))


def header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def test_kohya_lora_loads_in_diffusers_and_gives_the_same_images(lora_run, tiny_model_dir) -> None:
    path = export_run(lora_run, "kohya")
    assert path == lora_run / "exports" / "lora-kohya.safetensors"
    from safetensors.torch import load_file

    state = load_file(str(path))
    names = {key.split(".", 1)[0] for key in state}
    assert all(name.startswith(("lora_unet_", "lora_te_")) for name in names)
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_down_blocks_0_resnets_0_conv1" in names  # conv LoRA (LoCon) too
    assert {key.split(".", 1)[1] for key in state} == {"lora_down.weight", "lora_up.weight", "alpha"}
    assert all(state[f"{name}.alpha"].item() == 2.0 for name in names)
    meta = header(path)
    assert meta["adaptkit.method"] == "lora" and meta["adaptkit.base_model"] == str(tiny_model_dir)
    assert (meta["adaptkit.rank"], meta["adaptkit.alpha"], meta["adaptkit.training_steps"]) == ("4", "2.0", "2")
    assert len(meta["adaptkit.recipe_hash"]) == 16 and meta["ss_network_module"] == "networks.lora"

    pipeline = base_pipeline(tiny_model_dir)
    base = images(pipeline)
    pipeline.load_lora_weights(str(path))  # diffusers' own kohya conversion (UNet and text encoder)
    kohya = images(pipeline)
    assert sum(hasattr(m, "lora_A") for m in pipeline.text_encoder.modules()) == 2 * 4  # 2 layers x q, k, v, out
    native = native_images(lora_run, tiny_model_dir)
    assert (native - base).abs().max() > 1e-2  # the adapter matters ...
    torch.testing.assert_close(kohya, native, atol=1e-5, rtol=0)  # ... and the kohya file reproduces it


def test_lycoris_loha_converts_back_to_peft_with_identical_delta_w(loha_run, tiny_model_dir) -> None:
    from safetensors.torch import load_file

    from adaptkit.builtins.methods.loha import LohaMethod
    from adaptkit.interop.importer import load_onto
    from adaptkit.interop.peft_files import adapter_state_dict
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    path = export_run(loha_run, "kohya")
    state = load_file(str(path))
    suffixes = {key.split(".", 1)[1] for key in state}
    assert suffixes == {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha"}
    assert header(path)["ss_network_module"] == "lycoris.kohya"

    native = LohaMethod().apply(base_pipeline(tiny_model_dir), loha_run / "adapter")
    imported = load_base_model(ModelSection(base=str(tiny_model_dir)))
    load_onto(path, imported)
    deltas = tucker = 0
    for name, module in native.unet.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "hada_w1_a", {}):
            other = imported.unet.get_submodule(name)
            torch.testing.assert_close(
                other.get_delta_weight("default"), module.get_delta_weight("default"), atol=0, rtol=0
            )
            deltas += 1
            # LyCORIS' own formulas (modules/loha.py) on the file's tensors give the same update
            key = "lora_unet_" + name.replace(".", "_")
            w1a, w1b, w2a, w2b = (state[f"{key}.hada_{w}"] for w in ("w1_a", "w1_b", "w2_a", "w2_b"))
            if f"{key}.hada_t1" in state:  # Tucker: rebuild each factor from its core
                w1 = torch.einsum("i j k l, j r, i p -> p r k l", state[f"{key}.hada_t1"], w1b, w1a)
                w2 = torch.einsum("i j k l, j r, i p -> p r k l", state[f"{key}.hada_t2"], w2b, w2a)
                tucker += 1
            else:
                w1, w2 = w1a @ w1b, w2a @ w2b
            expected = module.get_delta_weight("default")
            scale = state[f"{key}.alpha"] / w1b.shape[0]
            torch.testing.assert_close((w1 * w2 * scale).reshape(expected.shape), expected)
    assert deltas > 10 and tucker > 0
    assert adapter_state_dict(imported.unet).keys() == adapter_state_dict(native.unet).keys()


def test_single_file_loads_with_from_single_file_and_gives_the_same_images(full_run, tiny_model_dir) -> None:
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    path = export_run(full_run, "single-file")
    assert header(path)["adaptkit.method"] == "full" and "adaptkit.rank" not in header(path)
    loaded = StableDiffusionPipeline.from_single_file(
        str(path), config=str(tiny_model_dir), local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    loaded.scheduler = DDIMScheduler.from_config(loaded.scheduler.config)
    loaded.set_progress_bar_config(disable=True)
    native_pipe = native_pipeline(full_run, tiny_model_dir)
    for part in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(native_pipe, part).state_dict(), getattr(loaded, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part
    native = images(native_pipe)
    assert (native - images(base_pipeline(tiny_model_dir))).abs().max() > 1e-3
    # the loaded weights are bit-identical to the run's; the UNet's output differs by ~4e-7 (float32
    # rounding; same configs, strides and attention processors, cause not pinned down)
    torch.testing.assert_close(images(loaded), native, atol=1e-5, rtol=0)


def test_native_formats(lora_run, loha_run, full_run, tmp_path) -> None:
    from diffusers import StableDiffusionPipeline

    lora = export_run(lora_run, "diffusers", tmp_path / "lora-diffusers")
    assert header(lora / "pytorch_lora_weights.safetensors")["adaptkit.method"] == "lora"
    peft = export_run(lora_run, "peft", tmp_path / "lora-peft")
    config = json.loads((peft / "unet" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 2.0)
    loha = export_run(loha_run, "peft", tmp_path / "loha-peft")
    assert json.loads((loha / "adapter_config.json").read_text())["peft_type"] == "LOHA"
    full = export_run(full_run, "diffusers", tmp_path / "full-diffusers")
    assert isinstance(StableDiffusionPipeline.from_pretrained(full, safety_checker=None), StableDiffusionPipeline)


@pytest.mark.parametrize(
    ("which", "fmt", "valid"),
    [("loha", "diffusers", "peft, kohya"), ("lora", "single-file", "diffusers, peft, kohya"), ("full", "kohya", "")],
)
def test_a_format_that_does_not_fit_the_method_is_a_user_error(
    which, fmt, valid, lora_run, loha_run, full_run, capsys
) -> None:
    run_dir = {"lora": lora_run, "loha": loha_run, "full": full_run}[which]
    assert main(["export", str(run_dir), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert f"does not fit method '{which}'" in err and (valid or "diffusers, single-file") in err
    with pytest.raises(UserError, match="no such run directory"):
        export_run(run_dir / "nope", fmt)


def test_cli_writes_the_default_path(lora_run, capsys) -> None:
    assert main(["export", str(lora_run), "--format", "kohya", "--out", str(lora_run / "x.safetensors")]) == 0
    assert "x.safetensors" in capsys.readouterr().out and (lora_run / "x.safetensors").is_file()
    assert main(["export", str(lora_run), "--format", "kohya", "--out", str(lora_run / "x.bin")]) == 2


def test_an_existing_out_is_replaced_only_with_overwrite(lora_run, tmp_path, capsys) -> None:
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"the user's own file")
    argv = ["export", str(lora_run), "--format", "kohya", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: --out {out}: the file exists; pass --overwrite to replace it, or give another --out"
    assert out.read_bytes() == b"the user's own file"
    assert main([*argv, "--overwrite"]) == 0
    assert header(out)["adaptkit.method"] == "lora"

    folder = tmp_path / "peft"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="the folder exists and is not empty; pass --overwrite"):
        export_run(lora_run, "peft", folder)
    assert export_run(lora_run, "peft", folder, overwrite=True) == folder
    assert (folder / "unet" / "adapter_config.json").is_file() and (folder / "notes.txt").read_text() == "keep me"
