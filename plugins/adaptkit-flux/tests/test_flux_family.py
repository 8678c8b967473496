"""The flux family through adaptkit's model-family contract, plus what is Flux's own: the packed
prediction, the resolution-dependent shift, the guidance option, the fused kohya layout (against
diffusers' reader at Flux.1's widths) and the smoke recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from adaptkit import Conditioning, ModelSection, UserError, load_base_model
from adaptkit.testing.family_contract import ModelFamilyContract
from adaptkit.testing.family_runs import (
    adaptkit_images,
    export_adapter,
    import_adapter,
    train,
    write_family_recipe,
)
from safetensors import safe_open
from safetensors.torch import load_file

from adaptkit_flux import Flux
from adaptkit_flux.tiny import SCHEDULER, save_tiny_flux_pipeline

PLUGIN = Path(__file__).resolve().parents[1]


class TestFluxFamily(ModelFamilyContract):
    component = Flux

    @pytest.fixture(scope="class")
    def family_base(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        # diffusers 0.42 reads a kohya Flux LoRA's single blocks at Flux.1's widths only (its reader
        # hard-codes 3 x 3072 + 12288 rows for linear1), so the contract runs on a tiny Flux without
        # them; test_single_blocks_round_trip_through_the_kohya_layout covers them.
        return save_tiny_flux_pipeline(tmp_path_factory.mktemp("flux") / "tiny", single_blocks=0)


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Flux with one single block, as ``flux-testing:tiny``."""
    return save_tiny_flux_pipeline(tmp_path_factory.mktemp("flux1") / "tiny", single_blocks=1)


def lora_delta(state: dict[str, torch.Tensor], module: str, scale: float, down: str, up: str) -> torch.Tensor:
    return scale * state[f"{module}.{up}"].double() @ state[f"{module}.{down}"].double()


def test_single_blocks_round_trip_through_the_kohya_layout(tiny_flux: Path, tmp_path: Path) -> None:
    """q, k, v (and the single block's MLP input) fuse into sd-scripts' modules with the same ΔW, and
    ``adaptkit import`` splits them back to the same images."""
    run_dir = train(write_family_recipe(tmp_path, tiny_flux, "lora", text_encoder=True))
    ours = load_file(str(run_dir / "adapter" / "pytorch_lora_weights.safetensors"))
    kohya_path = export_adapter(run_dir, "kohya")
    kohya = load_file(str(kohya_path))
    rank, alpha, width = 4, 8.0, 16  # the contract recipe's LoRA; the tiny model's width
    linear1 = "lora_unet_single_blocks_0_linear1"
    assert kohya[f"{linear1}.lora_down.weight"].shape == (3 * rank, width)
    assert kohya[f"{linear1}.lora_up.weight"].shape == (3 * width + 4 * width, 3 * rank)
    fused_scale = kohya[f"{linear1}.alpha"].item() / (3 * rank)
    fused = lora_delta(kohya, linear1, fused_scale, "lora_down.weight", "lora_up.weight")
    rows = torch.split(fused, [width, width, width, 4 * width])
    for row, name in zip(rows[:3], ("to_q", "to_k", "to_v"), strict=True):
        module = f"transformer.single_transformer_blocks.0.attn.{name}"
        expected = lora_delta(ours, module, alpha / rank, "lora_A.weight", "lora_B.weight")
        torch.testing.assert_close(row, expected, rtol=0, atol=1e-12)
    assert torch.count_nonzero(rows[3]) == 0  # proj_mlp has no adapter: zero rows
    assert any(key.startswith("lora_unet_double_blocks_0_img_attn_qkv.") for key in kohya)
    assert any(key.startswith("lora_te_text_model_encoder_layers_") for key in kohya)
    with safe_open(str(kohya_path), framework="pt") as handle:
        header = handle.metadata()
    assert (header["ss_base_model_version"], header["modelspec.architecture"]) == ("flux1", "flux-1-dev/lora")

    imported = import_adapter(kohya_path, tiny_flux, tmp_path / "imported")
    assert (adaptkit_images(tiny_flux, imported) - adaptkit_images(tiny_flux, run_dir)).abs().max() <= 1e-5


#: Flux.1-dev's transformer config (its ``transformer/config.json``).
FLUX1_DEV = {
    "_class_name": "FluxTransformer2DModel",
    "attention_head_dim": 128,
    "guidance_embeds": True,
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}


def write_flux1_lora_run(tmp_path: Path, state: dict[str, torch.Tensor], rank: int, alpha: float) -> Path:
    """A finished LoRA run on a Flux.1-dev-shaped base that holds only its transformer's config and an
    empty weights file (enough to export: no weights are read)."""
    from diffusers import FluxPipeline
    from peft import LoraConfig
    from safetensors.torch import save_file

    base = tmp_path / "flux1-dev"
    (base / "transformer").mkdir(parents=True)
    (base / "transformer" / "config.json").write_text(json.dumps(FLUX1_DEV))
    save_file({}, str(base / "transformer" / "diffusion_pytorch_model.safetensors"))
    index = {"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}
    (base / "model_index.json").write_text(json.dumps(index))
    run_dir = tmp_path / "runs" / "flux1"
    targets = sorted({key.rsplit(".lora_", 1)[0] for key in state})
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets).to_dict()
    config["target_modules"] = sorted(config["target_modules"])
    FluxPipeline.save_lora_weights(
        run_dir / "adapter",
        transformer_lora_layers=state,
        transformer_lora_adapter_metadata=config,
        weight_name="pytorch_lora_weights.safetensors",
        safe_serialization=True,
    )
    (run_dir / "recipe.toml").write_text(
        f'[model]\nbase = "{base}"\n[data]\nadapter = "imagefolder"\n[data.options]\nsource = "x"\n'
        '[method]\nname = "lora"\n'
    )
    return run_dir


def test_kohya_layout_reads_in_diffusers_at_flux1_widths(tmp_path: Path) -> None:
    """At Flux.1-dev's widths, diffusers' own kohya reader (``FluxPipeline.lora_state_dict``) turns the
    export back into each module's ΔW: fused q/k/v/MLP split, alphas folded in."""
    from diffusers import FluxPipeline

    rank, alpha, width = 2, 8.0, 3072
    generator = torch.Generator().manual_seed(0)
    modules = {
        "transformer_blocks.0.attn.to_q": (width, width),
        "transformer_blocks.0.attn.to_k": (width, width),
        "transformer_blocks.0.attn.to_v": (width, width),
        "transformer_blocks.0.attn.add_k_proj": (width, width),
        "transformer_blocks.0.ff.net.2": (width, 4 * width),
        "single_transformer_blocks.0.attn.to_q": (width, width),
        "single_transformer_blocks.0.attn.to_v": (width, width),
        "single_transformer_blocks.0.proj_mlp": (4 * width, width),
    }
    state = {}
    for module, (out_features, in_features) in modules.items():
        state[f"{module}.lora_A.weight"] = torch.randn(rank, in_features, generator=generator)
        state[f"{module}.lora_B.weight"] = torch.randn(out_features, rank, generator=generator)
    kohya = export_adapter(write_flux1_lora_run(tmp_path, state, rank, alpha), "kohya")
    loaded = FluxPipeline.lora_state_dict(str(kohya))
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    for module in modules:
        expected = lora_delta(state, module, alpha / rank, "lora_A.weight", "lora_B.weight")
        theirs = lora_delta(loaded, f"transformer.{module}", 1.0, "lora_A.weight", "lora_B.weight")
        torch.testing.assert_close(theirs, expected, rtol=1e-6, atol=1e-5, msg=module)
    skipped = {"transformer_blocks.0.attn.add_q_proj", "single_transformer_blocks.0.attn.to_k"}
    for module in skipped:  # fused with adapted members, no adapter of their own: a zero update
        key = f"transformer.{module}"
        if f"{key}.lora_B.weight" in loaded:
            assert torch.count_nonzero(lora_delta(loaded, key, 1.0, "lora_A.weight", "lora_B.weight")) == 0


def test_the_shift_follows_the_image_size_as_the_scheduler_config_says(tiny_flux: Path) -> None:
    """μ is linear in the packed token count between (256 tokens, base_shift) and (4096, max_shift), and
    the σ the scheduler shifts with it are exp(μ) / (exp(μ) + 1/σ - 1); off with resolution_shift = false."""
    components = load_base_model(ModelSection(base=str(tiny_flux)))
    family = components.family
    assert family.shift_mu(torch.zeros(1, 16, 32, 32)) == pytest.approx(SCHEDULER["base_shift"])  # 256 px
    assert family.shift_mu(torch.zeros(1, 16, 128, 128)) == pytest.approx(SCHEDULER["max_shift"])  # 1024 px
    assert family.shift_mu(torch.zeros(2, 16, 64, 64)) == pytest.approx(0.5 + 0.65 * (1024 - 256) / 3840)
    sigma = torch.tensor([0.5, 0.25])
    mu = 1.15
    expected = torch.tensor([math.exp(mu) / (math.exp(mu) + 1 / s - 1) for s in (0.5, 0.25)])
    torch.testing.assert_close(components.noise_scheduler.time_shift(mu, 1.0, sigma), expected)
    off = load_base_model(ModelSection(base=str(tiny_flux), options={"resolution_shift": False})).family
    assert off.shift_mu(torch.zeros(1, 16, 128, 128)) is None


def test_prediction_packs_and_unpacks_like_the_pipeline(tiny_flux: Path) -> None:
    """A denoiser that returns its input gives back the latents unchanged (pack then unpack), and the
    transformer is called with the timestep / 1000, the option's guidance and Flux's position ids."""
    family = load_base_model(ModelSection(base=str(tiny_flux), options={"guidance": 1.5})).family
    seen = {}

    def echo(**inputs):
        seen.update(inputs)
        return (inputs["hidden_states"],)

    latents = torch.randn(2, 16, 4, 6)
    states = Conditioning(torch.zeros(2, 5, 64), {"pooled_projections": torch.zeros(2, 32)})
    out = family.predict(echo, latents, torch.tensor([500.0, 250.0]), states)
    assert torch.equal(out, latents)
    assert seen["hidden_states"].shape == (2, 2 * 3, 64)
    torch.testing.assert_close(seen["timestep"], torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(seen["guidance"], torch.tensor([1.5, 1.5]))
    assert seen["img_ids"].shape == (6, 3) and seen["img_ids"][-1].tolist() == [0.0, 1.0, 2.0]
    assert seen["txt_ids"].shape == (5, 3) and not seen["txt_ids"].any()


def test_a_bad_family_option_is_one_line_naming_the_key(tiny_flux: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_base_model(ModelSection(base=str(tiny_flux), options={"guidanse": 1.0}))
    assert caught.value.lines == [
        "model family flux: model.options.guidanse: unknown key (valid: guidance, resolution_shift)"
    ]


def test_the_smoke_recipe_trains_samples_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = train(PLUGIN / "recipes" / "tiny-flux-smoke.toml", "train.steps=4", "checkpoint.every=2")
    assert json.loads((run_dir / "result.json").read_text())["steps"] == 4
    assert sorted(p.suffix for p in (run_dir / "samples").rglob("*.png"))
    assert export_adapter(run_dir, "kohya").stat().st_size > 0
