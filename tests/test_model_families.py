"""Model families: detection from the base, one-line refusals, and a family added by a plugin."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from adaptkit.errors import UserError
from adaptkit.models import load_base_model
from adaptkit.models.family import choose_family
from adaptkit.models.source import resolve_base
from adaptkit.plugins import get_plugin_manager
from adaptkit.recipe import ModelSection

ROOT = Path(__file__).resolve().parents[1]


def as_class(tiny_model_dir: Path, folder: Path, class_name: str) -> Path:
    """The tiny model copied with another ``model_index.json`` ``_class_name`` (what a new user hands in)."""
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": class_name}))
    return folder


def test_auto_detects_each_builtin_family(tiny_model_dir: Path, tmp_path: Path) -> None:
    from adaptkit.testing.tiny_sd2 import save_tiny_sd2_pipeline
    from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

    assert load_base_model(ModelSection(base=str(tiny_model_dir))).family.name == "sd1"
    sd2 = load_base_model(ModelSection(base=str(save_tiny_sd2_pipeline(tmp_path / "sd2"))))
    assert sd2.family.name == "sd2" and sd2.noise_scheduler.config.prediction_type == "v_prediction"
    sdxl = load_base_model(ModelSection(base=str(save_tiny_sdxl_pipeline(tmp_path / "sdxl"))))
    assert sdxl.family.name == "sdxl"
    assert list(sdxl.text_encoders()) == ["text_encoder", "text_encoder_2"] and len(sdxl.tokenizers()) == 2
    assert list(sdxl.parts()) == ["unet", "text_encoder", "text_encoder_2"]


def test_a_pipeline_no_family_handles_is_refused_in_one_line_before_loading(tiny_model_dir: Path, tmp_path) -> None:
    folder = as_class(tiny_model_dir, tmp_path / "pixart", "PixArtAlphaPipeline")
    with pytest.raises(UserError) as error:
        load_base_model(ModelSection(base=str(folder)))
    message = str(error.value)
    assert "\n" not in message
    installed = ", ".join(get_plugin_manager().collect().model_families.names())  # sd1, sd2, sd3, sdxl, plugins'
    assert f"model.base: {folder} is a PixArtAlphaPipeline folder" in message
    assert f"no installed model family handles (installed: {installed})" in message


def test_a_family_that_does_not_match_names_what_was_detected(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"model.family = 'sdxl': .* is a StableDiffusionPipeline folder \(detected sd1\)"
    ):
        load_base_model(ModelSection(base=str(tiny_model_dir), family="sdxl"))
    registered = ", ".join(get_plugin_manager().collect().model_families.names())
    with pytest.raises(UserError) as error:
        load_base_model(ModelSection(base=str(tiny_model_dir), family="sdx"))
    assert error.value.lines == [f"model.family: unknown model_family 'sdx' (registered: {registered})"]


def test_the_run_prints_the_family_and_refuses_an_unhandled_base(tiny_model_dir, tmp_path, capsys) -> None:
    from adaptkit.cli import main
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import write_recipe

    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", train={"steps": 1}, sample={"prompts": []})
    assert main(["run", str(recipe), "--no-progress"]) == 0
    assert "model family: sd1 (detected)" in capsys.readouterr().out
    folder = as_class(tiny_model_dir, tmp_path / "pixart", "PixArtAlphaPipeline")
    assert main(["run", str(recipe), "--no-progress", "--overwrite", "--set", f"model.base={folder}"]) == 2
    captured = capsys.readouterr()
    assert "no installed model family handles" in captured.err and "latents reused from" not in captured.out


PLUGIN = """
import adaptkit
from adaptkit.builtins.families.sd1 import StableDiffusion1

class HouseFamily(StableDiffusion1):
    name = "house"
    description = "An SD1-layout pipeline of our own, to show a plugin can add a family."
    pipeline_class_names = ("HousePipeline",)

@adaptkit.hookimpl
def register_model_families(register):
    register(HouseFamily)
"""


def test_a_plugin_adds_a_family(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = tmp_path / "house_family.py"
    module.write_text(textwrap.dedent(PLUGIN))
    families = get_plugin_manager([str(module)]).collect().model_families
    folder = as_class(tiny_model_dir, tmp_path / "house", "HousePipeline")
    model = ModelSection(base=str(folder))
    assert choose_family(resolve_base(model), model, families).name == "house"
    with pytest.raises(UserError, match="no installed model family handles"):
        choose_family(resolve_base(model), model)  # without the plugin


def test_a_single_file_is_recognised_by_its_keys(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from adaptkit.testing.tiny_model import save_tiny_single_file

    path = save_tiny_single_file(tmp_path / "tiny.safetensors", seed=0)
    model = ModelSection(base=str(path))
    assert choose_family(resolve_base(model), model).name == "sd1"
    layouts = {
        "sd2": ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", "model.diffusion_model.y"],
        "sdxl": ["conditioner.embedders.1.model.x", "model.diffusion_model.y"],
    }
    for family, keys in layouts.items():
        file = tmp_path / f"{family}.safetensors"
        save_file({key: torch.zeros(1) for key in keys}, str(file))
        model = ModelSection(base=str(file))
        assert choose_family(resolve_base(model), model).name == family
    unknown = tmp_path / "unknown.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(1)}, str(unknown))
    model = ModelSection(base=str(unknown))
    with pytest.raises(UserError, match="is a single-file checkpoint, which no installed model family handles"):
        choose_family(resolve_base(model), model)


ARCHITECTURE_WORDS = (
    "StableDiffusionPipeline",
    "StableDiffusionXL",
    "StableDiffusion3",
    *(f"{q}{n}{q}" for n in ("sd1", "sd2", "sdxl", "sd3") for q in "'\""),
)


def test_no_core_module_names_an_architecture() -> None:
    """Only the family plugins (and the test kit's model builders) name an architecture."""
    allowed = ("builtins/families/", "testing/", "embedded/pretraining/")
    named = set()
    for path in sorted((ROOT / "src" / "adaptkit").rglob("*.py")):
        relative = path.relative_to(ROOT / "src" / "adaptkit").as_posix()
        if relative.startswith(allowed):
            continue
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith(("#", '"', "'"))
        )
        if any(word in code for word in ARCHITECTURE_WORDS):
            named.add(relative)
    assert named == set(), f"modules outside the family plugins name an architecture: {sorted(named)}"


def test_model_vae_replaces_the_base_vae_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    import torch

    from adaptkit.testing.tiny_model import build_tiny_vae
    from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

    base = save_tiny_sdxl_pipeline(tmp_path / "sdxl")
    torch.manual_seed(7)
    replacement = build_tiny_vae()
    replacement.save_pretrained(tmp_path / "vae", safe_serialization=True)
    components = load_base_model(ModelSection(base=str(base), vae=str(tmp_path / "vae")))
    for name, value in replacement.state_dict().items():
        assert torch.equal(components.vae.state_dict()[name], value), name
    with pytest.raises(UserError) as error:
        load_base_model(ModelSection(base=str(base), vae=str(tmp_path / "no-such-vae")))
    assert str(error.value).startswith("model.vae: cannot load") and "\n" not in str(error.value)
