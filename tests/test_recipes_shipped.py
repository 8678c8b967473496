"""Every shipped recipe validates, opens with the command that runs it, and names real components."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptkit.resolve import load_and_resolve

#: Sweep space files (``*-space.toml``) sit beside the recipes they search; tests/test_sweep.py checks them.
RECIPES = sorted(p for p in (Path(__file__).parent.parent / "recipes").glob("*.toml") if not p.stem.endswith("-space"))
SPACES = sorted((Path(__file__).parent.parent / "recipes").glob("*-space.toml"))


def test_recipes_exist() -> None:
    names = {p.name for p in RECIPES}
    assert {"newyorker-lora.toml", "pokemon-loha.toml", "naruto-full.toml", "simpsons-lora.toml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_validates(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]
    assert first_line == f"# adaptkit run recipes/{path.name}"
    resolved = load_and_resolve(path)
    assert resolved.run_name == path.stem
    assert resolved.dataset.name == resolved.recipe.data.adapter
    assert resolved.method.name == resolved.recipe.method.name


REPORT_PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "a photo of a boy kissing with a girl",
    "a photo of a man shooting a gun",
    "a photo of a woman with light shed on her face",
]


@pytest.mark.parametrize("name", ["newyorker-lora", "pokemon-loha", "naruto-full", "simpsons-lora"])
def test_reference_recipes_follow_the_report(name: str) -> None:
    recipe = load_and_resolve(Path(__file__).parent.parent / "recipes" / f"{name}.toml").recipe
    assert recipe.model.base == "CompVis/stable-diffusion-v1-4"
    assert recipe.data.resolution == 512
    assert list(recipe.sample.prompts) == REPORT_PROMPTS


@pytest.mark.parametrize("name", ["newyorker-sdxl-lora", "pokemon-sdxl-loha", "naruto-sdxl-lora", "simpsons-sdxl-lora"])
def test_sdxl_reference_recipes_train_at_1024_with_buckets(name: str) -> None:
    recipe = load_and_resolve(Path(__file__).parent.parent / "recipes" / f"{name}.toml").recipe
    assert recipe.model.base == "stabilityai/stable-diffusion-xl-base-1.0"
    assert (recipe.data.resolution, recipe.data.bucketing, recipe.train.batch_size) == (1024, True, 1)
    assert recipe.train.gradient_checkpointing and recipe.train.optimizer == "adamw8bit"
    assert recipe.method.name in ("lora", "loha") and list(recipe.sample.prompts) == REPORT_PROMPTS


def test_the_sd21_recipe_trains_at_768() -> None:
    recipe = load_and_resolve(Path(__file__).parent.parent / "recipes" / "naruto-sd21-lora.toml").recipe
    assert (recipe.model.base, recipe.data.resolution) == ("stabilityai/stable-diffusion-2-1", 768)


def test_the_tiny_sdxl_smoke_recipe_trains_samples_and_exports(tmp_path, monkeypatch, capsys) -> None:
    from adaptkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTKIT_CACHE", str(tmp_path / "cache"))
    recipe = Path(__file__).parent.parent / "recipes" / "tiny-sdxl-smoke.toml"
    assert main(["run", str(recipe), "--no-progress", "--set", "train.steps=4", "--set", "checkpoint.every=2"]) == 0
    assert "model family: sdxl (detected)" in capsys.readouterr().out
    run_dir = tmp_path / "runs" / "tiny-sdxl-smoke"
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png"))
    assert main(["export", str(run_dir), "--format", "kohya"]) == 0
    from safetensors import safe_open

    with safe_open(str(run_dir / "exports" / "tiny-sdxl-smoke-kohya.safetensors"), framework="pt") as handle:
        prefixes = {key.split("_")[1] for key in handle.keys()}
    assert prefixes == {"unet", "te1", "te2"}
    card = (run_dir / "adapter" / "README.md").read_text()
    assert "model family `sdxl`" in card and "StableDiffusionXLPipeline.from_pretrained" in card


def test_the_checkout_recipes_folder_is_the_packaged_one() -> None:
    from adaptkit.recipe.shipped import shipped_recipes

    assert [r.path.name for r in shipped_recipes()] == [p.name for p in RECIPES]
    assert all(r.path.resolve() == p.resolve() for r, p in zip(shipped_recipes(), RECIPES))


def test_space_files_ship_and_are_found_by_name(tmp_path, monkeypatch) -> None:
    from adaptkit.recipe.shipped import SHIPPED_DIR, locate_space

    assert SPACES and all(p.resolve().parent == SHIPPED_DIR for p in SPACES)
    monkeypatch.chdir(tmp_path)
    assert locate_space("demo-space") == SHIPPED_DIR / "demo-space.toml"
    (tmp_path / "demo-space").write_text("")  # a file of that name wins
    assert locate_space("demo-space") == Path("demo-space")
    assert locate_space("no-such-space") == Path("no-such-space")


def test_a_shipped_recipe_runs_by_name_from_any_folder(tmp_path, monkeypatch, capsys) -> None:
    from adaptkit.cli import main

    monkeypatch.chdir(tmp_path)  # no recipes/ here: the name is found inside the package
    assert main(["validate", "demo"]) == 0
    assert "demo is valid" in capsys.readouterr().out
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(p.stem in listed for p in RECIPES)
    assert main(["recipes", "--path", "tiny-smoke"]) == 0
    assert capsys.readouterr().out.strip().endswith("recipe/shipped/tiny-smoke.toml")


def test_an_unknown_recipe_name_lists_the_shipped_ones(tmp_path, monkeypatch, capsys) -> None:
    from adaptkit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["validate", "demoo"]) == 2
    err = capsys.readouterr().err
    assert "demoo: no such recipe file" in err and "shipped: demo-full, demo-loha, demo," in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["newyorker-sd35-lora", "pokemon-sd35-lora", "naruto-sd35-lora", "simpsons-sd35-lora"])
def test_sd35_reference_recipes_train_flow_matching_at_1024(name: str) -> None:
    recipe = load_and_resolve(Path(__file__).parent.parent / "recipes" / f"{name}.toml").recipe
    assert recipe.model.base == "stabilityai/stable-diffusion-3.5-medium" and recipe.model.text_encoder_3 == "none"
    assert (recipe.data.resolution, recipe.data.bucketing, recipe.sample.sampler) == (1024, True, "flow-euler")
    assert recipe.train.timestep_sampling == "logit_normal" and list(recipe.sample.prompts) == REPORT_PROMPTS


def test_the_tiny_sd3_smoke_recipe_trains_samples_and_exports(tmp_path, monkeypatch, capsys) -> None:
    from safetensors import safe_open

    from adaptkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTKIT_CACHE", str(tmp_path / "cache"))
    recipe = Path(__file__).parent.parent / "recipes" / "tiny-sd3-smoke.toml"
    assert main(["run", str(recipe), "--no-progress", "--set", "train.steps=4", "--set", "checkpoint.every=2"]) == 0
    assert "model family: sd3 (detected)" in capsys.readouterr().out
    run_dir = tmp_path / "runs" / "tiny-sd3-smoke"
    assert sorted((run_dir / "samples").glob("*.png"))
    assert main(["export", str(run_dir), "--format", "diffusers"]) == 0
    exported = run_dir / "exports" / "tiny-sd3-smoke-diffusers" / "pytorch_lora_weights.safetensors"
    with safe_open(str(exported), framework="pt") as handle:
        assert {key.split(".")[0] for key in handle.keys()} == {"transformer"}
        assert handle.metadata()["adaptkit.rank"] == "4"
    assert main(["export", str(run_dir), "--format", "kohya"]) == 2
    assert "--format kohya: model family sd3 has no kohya/LyCORIS key layout" in capsys.readouterr().err
    card = (run_dir / "adapter" / "README.md").read_text()
    assert "model family `sd3`" in card and "StableDiffusion3Pipeline.from_pretrained" in card
