"""Loading the base model: local folders, single files, embedded models, the Hub, and every user mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from adaptkit.embedded import plugin as embedded_plugin
from adaptkit.errors import UserError
from adaptkit.models import load_base_model
from adaptkit.recipe import ModelSection
from adaptkit.testing.tiny_model import PROMPT_WORDS, build_tiny_pipeline, save_tiny_single_file


def max_weight_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def user_error(base: str, **kwargs) -> str:
    """The message load_base_model raises for ``base``; it must be one line."""
    with pytest.raises(UserError) as info:
        load_base_model(
            ModelSection(base=base, **{k: v for k, v in kwargs.items() if k != "config"}), config=kwargs.get("config")
        )
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def reference():
    """The tiny pipeline built in code with the fixture's seed."""
    return build_tiny_pipeline(seed=0)


def test_tiny_pipeline_is_sd_v1_layout(reference) -> None:
    unet, vae = reference.unet.config, reference.vae.config
    assert len(unet.block_out_channels) == 4 and unet.layers_per_block == 2
    assert list(unet.down_block_types) == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert len(vae.block_out_channels) == 4 and vae.latent_channels == 4
    assert reference.text_encoder.config.hidden_size == unet.cross_attention_dim
    assert reference.tokenizer.model_max_length == 77
    assert all(len(reference.tokenizer.tokenize(word)) == 1 for word in PROMPT_WORDS)
    assert reference.tokenizer.tokenize("xylophone!")[-1] == "!</w>"  # unseen words still encode
    sched = reference.scheduler.config
    assert (sched.beta_schedule, sched.beta_start, sched.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert (sched.num_train_timesteps, sched.prediction_type) == (1000, "epsilon")


def test_local_folder_loads_same_weights(tiny_model_dir: Path, reference) -> None:
    components = load_base_model(ModelSection(base=str(tiny_model_dir)))
    for name in ("unet", "vae", "text_encoder"):
        assert max_weight_diff(getattr(components, name), getattr(reference, name)) == 0.0
    assert type(components.noise_scheduler).__name__ == "DDPMScheduler"
    assert components.scheduler_config["beta_schedule"] == "scaled_linear"
    assert components.source == str(tiny_model_dir)
    assert components.extra["kind"] == "folder"
    assert components.tokenizer("a photo")["input_ids"] == reference.tokenizer("a photo")["input_ids"]
    pipe = components.pipeline(components.noise_scheduler)
    assert pipe.safety_checker is None and pipe.unet is components.unet


def test_dtype_is_applied(tiny_model_dir: Path) -> None:
    components = load_base_model(ModelSection(base=str(tiny_model_dir)), dtype=torch.bfloat16)
    assert components.unet.dtype == torch.bfloat16 and components.text_encoder.dtype == torch.bfloat16


def test_single_file_loads_weights_from_the_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = save_tiny_single_file(tmp_path / "tiny-seed1.safetensors", seed=1)
    components = load_base_model(ModelSection(base=str(path)), config=tiny_model_dir)
    other = build_tiny_pipeline(seed=1)  # the folder holds seed 0: equal weights prove they came from the file
    for name in ("unet", "vae", "text_encoder"):
        assert max_weight_diff(getattr(components, name), getattr(other, name)) == 0.0
    assert components.extra["kind"] == "single_file"


def test_single_file_without_config_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = save_tiny_single_file(tmp_path / "tiny.safetensors")
    message = user_error(str(path))
    assert str(path) in message and "config" in message


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt"])
def test_pickle_single_file_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"pickle")
    message = user_error(str(path))
    assert str(path) in message and "model.allow_pickle" in message


def test_pickle_folder_is_refused_unless_allowed(tmp_path: Path, tiny_model_dir: Path, reference) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "pickled")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    message = user_error(str(folder))
    assert str(folder / "unet" / "diffusion_pytorch_model.bin") in message and "model.allow_pickle" in message
    components = load_base_model(ModelSection(base=str(folder), allow_pickle=True))
    assert max_weight_diff(components.unet, reference.unet) == 0.0


@pytest.mark.parametrize("component", ["unet", "tokenizer"])
def test_missing_component_names_folder_and_component(tmp_path: Path, tiny_model_dir: Path, component: str) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "partial")
    shutil.rmtree(folder / component)
    message = user_error(str(folder))
    assert str(folder) in message and f"'{component}'" in message


def test_folder_without_model_index(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    assert "model_index.json" in user_error(str(tmp_path))


def test_hub_id_offline_says_how_to_provide_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = user_error("adaptkit-tests/no-such-model-7f3a")
    assert "'adaptkit-tests/no-such-model-7f3a'" in message
    assert "--local-dir" in message and "model.base" in message


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("./no/such/dir", "no such folder or file"),
        ("not a hub id!", "not a Hub id"),
        ("/nope/model.safetensors", "no such"),
    ],
)
def test_bad_base_values(base: str, expected: str) -> None:
    assert expected in user_error(base)


def test_unknown_embedded_model_lists_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiny-x").mkdir()
    (tmp_path / "tiny-x" / "model_index.json").write_text("{}")
    (tmp_path / "not-a-model").mkdir()
    monkeypatch.setattr(embedded_plugin, "embedded_root", lambda: tmp_path)
    message = user_error("embedded:nope")
    assert "'nope'" in message and "embedded:tiny-x" in message and "not-a-model" not in message


def test_embedded_model_loads_through_from_pretrained(
    tmp_path: Path, tiny_model_dir: Path, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny-sd").symlink_to(tiny_model_dir, target_is_directory=True)
    monkeypatch.setattr(embedded_plugin, "embedded_root", lambda: tmp_path)
    components = load_base_model(ModelSection(base="embedded:tiny-sd"))
    assert components.extra["kind"] == "named"
    assert max_weight_diff(components.unet, reference.unet) == 0.0


def test_real_embedded_root_is_inside_the_package() -> None:
    import adaptkit

    assert embedded_plugin.embedded_root() == Path(adaptkit.__file__).resolve().parent / "embedded"


@pytest.mark.parametrize(
    "content", [b"this is not a checkpoint at all" * 10, b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{not json"]
)
def test_corrupt_single_file_says_it_is_not_readable_not_that_it_needs_the_hub(
    tmp_path: Path, tiny_model_dir: Path, content: bytes
) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    for config in (None, tiny_model_dir):  # with or without a config folder: the file itself is at fault
        message = user_error(str(path), config=config)
        assert message.startswith(f"model.base: {path} is not a readable safetensors checkpoint ("), message
        assert "Hub" not in message.split(";")[0]
