"""An intermediate checkpoint in use: ``adaptkit sample --checkpoint`` and ``adaptkit export --checkpoint``
build from that checkpoint's weights (its EMA weights when the run kept an EMA, as the result holds them);
and a checkpoint that fails its hash is named, for ``--resume`` and ``--checkpoint`` alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.errors import UserError
from adaptkit.interop.export import export_run
from adaptkit.testing.datasets import write_naruto
from adaptkit.training import checkpoint as ckpt
from adaptkit.training.checkpoint_use import find_checkpoint

from training_helpers import run, write_recipe


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Two LoRA steps with an EMA (decay 0.5: the EMA differs from the trained weights) and a
    checkpoint after each step; the run's result holds the EMA weights of step 2."""
    folder = tmp_path_factory.mktemp("ckpt-use")
    data = write_naruto(folder / "naruto", rows=2).path
    recipe = write_recipe(
        folder,
        tiny_model_dir,
        data,
        "lora",
        name="ema-lora",
        method={"options": {"rank": 4, "init_weights": False, "text_encoder": False}},
        train={"steps": 2, "learning_rate": 5e-2},
        ema={"enabled": True, "decay": 0.5},
        checkpoint={"every": 1, "keep": 3},
        sample={"prompts": []},
    )
    run(recipe)
    run_dir = folder / "runs" / "ema-lora"
    assert [p.name for p in ckpt.list_checkpoints(run_dir / "checkpoints")] == ["step-000001", "step-000002"]
    return run_dir


def _kohya(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_export_of_the_last_checkpoint_equals_the_result_export_ema_weights_included(ema_run, tmp_path) -> None:
    result = _kohya(export_run(ema_run, "kohya", tmp_path / "result.safetensors"))
    last = export_run(ema_run, "kohya", tmp_path / "step2.safetensors", checkpoint="step-2")
    first = export_run(ema_run, "kohya", tmp_path / "step1.safetensors", checkpoint="step-000001")
    last_state, first_state = _kohya(last), _kohya(first)
    assert last_state.keys() == result.keys()
    # step 2's EMA weights are what the run saved as its result: bit-identical
    assert all(torch.equal(last_state[k], result[k]) for k in result)
    # the checkpoint of step 1 holds other weights
    assert any(not torch.equal(first_state[k], result[k]) for k in result if k.endswith("lora_up.weight"))
    from safetensors import safe_open

    with safe_open(str(first), framework="pt") as handle:
        assert handle.metadata()["adaptkit.training_steps"] == "1"
    assert first.with_suffix(".md").is_file()  # the model card goes with it


def test_export_cli_takes_checkpoint_by_name_or_as_the_run_dir(ema_run, tmp_path, capsys) -> None:
    assert main(["export", str(ema_run), "--format", "kohya", "--checkpoint", "step-1"]) == 0
    default = ema_run / "exports" / "ema-lora-step-000001-kohya.safetensors"
    assert default.is_file() and str(default) in capsys.readouterr().out
    given = ema_run / "checkpoints" / "step-000001"
    out = tmp_path / "direct.safetensors"
    assert main(["export", str(given), "--format", "kohya", "--out", str(out)]) == 0
    one, two = _kohya(default), _kohya(out)
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


def _grid(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_sample_checkpoint_uses_its_weights(ema_run, tmp_path, capsys) -> None:
    common = ["sample", "--adapter", str(ema_run), "--prompt", "a ninja", "--steps", "2", "--sampler", "ddim"]
    common += ["--resolution", "32"]
    paths = {name: tmp_path / f"{name}.png" for name in ("result", "step2", "step1", "direct1")}
    assert main([*common, "--out", str(paths["result"])]) == 0
    assert main([*common, "--checkpoint", "step-2", "--out", str(paths["step2"])]) == 0
    assert main([*common, "--checkpoint", "step-000001", "--out", str(paths["step1"])]) == 0
    direct = [*common, "--out", str(paths["direct1"])]
    direct[direct.index(str(ema_run))] = str(ema_run / "checkpoints" / "step-000001")
    assert main(direct) == 0
    assert "step-000001" in capsys.readouterr().out
    grids = {name: _grid(path) for name, path in paths.items()}
    assert np.array_equal(grids["step2"], grids["result"])  # EMA weights, as the result holds them
    assert np.array_equal(grids["direct1"], grids["step1"])
    assert np.abs(grids["step1"] - grids["result"]).max() > 0


def test_sample_reports_prompts_cut_to_the_token_window(ema_run, tmp_path, capsys) -> None:
    long_prompt = " ".join(["ninja"] * 100)
    argv = ["sample", "--adapter", str(ema_run), "--steps", "1", "--resolution", "32", "--out", str(tmp_path / "a.png")]
    assert main([*argv, "--prompt", long_prompt, "--prompt", "a ninja"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 prompts cut to the text encoder's 77 tokens" in out
    assert main([*argv, "--prompt", "a ninja"]) == 0
    assert "cut to" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--checkpoint", "step-7"], "--checkpoint step-7: no such checkpoint"),
        (["--checkpoint", "nope"], "checkpoints in"),
    ],
)
def test_unknown_checkpoint_lists_the_ones_there(ema_run, tmp_path, capsys, argv, expected) -> None:
    out = str(tmp_path / "x.png")
    assert main(["sample", "--adapter", str(ema_run), "--prompt", "p", "--out", out, *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and "step-000001, step-000002" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- corrupt checkpoints


def _write(root: Path, step: int) -> Path:
    weights = {"unet.w": torch.full((2, 2), float(step))}
    return ckpt.write_checkpoint(root, step, weights, {"ema": None}, {"recipe_hash": "x"})


def _corrupt(path: Path, name: str = ckpt.TRAINABLE) -> None:
    data = bytearray((path / name).read_bytes())
    data[-1] ^= 0xFF
    (path / name).write_bytes(bytes(data))


def test_resume_with_no_complete_checkpoint_names_the_file_that_failed(tmp_path) -> None:
    root = tmp_path / "checkpoints"
    _corrupt(_write(root, 1))
    with pytest.raises(UserError) as info:
        ckpt.resume_path("latest", root)
    message = str(info.value)
    assert "step-000001: trainable.safetensors does not match its SHA-256 in manifest.json" in message
    assert "\n" not in message


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning_naming_both(tmp_path, capsys) -> None:
    root = tmp_path / "checkpoints"
    older, newer = _write(root, 1), _write(root, 2)
    _corrupt(newer, ckpt.STATE)
    assert ckpt.resume_path("latest", root) == older
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and len(err.strip().splitlines()) == 1
    assert str(newer) in err and str(older) in err and "training_state.pt does not match" in err
    assert ckpt.resume_path("latest", root) == older  # warned once per process
    assert capsys.readouterr().err == ""


def test_load_checkpoint_names_the_option_and_the_file(tmp_path) -> None:
    path = _write(tmp_path / "checkpoints", 3)
    (path / ckpt.TRAINABLE).unlink()
    with pytest.raises(UserError, match=r"--checkpoint .*step-000003: .*trainable.safetensors is missing"):
        ckpt.load_checkpoint(path, "--checkpoint")


def test_find_checkpoint_by_step_number_name_path_or_latest(tmp_path) -> None:
    root = tmp_path / "checkpoints"
    one, two = _write(root, 1), _write(root, 20)
    assert find_checkpoint(root, "step-20") == two
    assert find_checkpoint(root, "1") == one
    assert find_checkpoint(root, "step-000001") == one
    assert find_checkpoint(root, str(two)) == two
    assert find_checkpoint(root, "latest") == two
    _corrupt(two)
    with pytest.raises(UserError, match="step-20: .* is not a complete checkpoint .*trainable.safetensors does not"):
        find_checkpoint(root, "step-20")
