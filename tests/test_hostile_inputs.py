"""Hostile inputs through the CLI: a bad data row is skipped and counted with a line naming its row
and file; every other mistake is exit status 2 with one line naming the file or key."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from adaptkit.cli import main
from adaptkit.testing.datasets import (
    broken_images,
    encode,
    pattern_image,
    png_header_only,
    unusual_images,
    write_naruto,
)

from training_helpers import write_recipe

GOOD = 2  # good images beside each hostile one


_broken, _unusual = broken_images(), unusual_images()
#: name -> (image bytes, caption bytes or None for no sidecar, what happens: "skip" or "keep").
DATA_ROWS: dict[str, tuple[bytes, bytes | None, str]] = {
    "corrupt.png": (_broken["corrupt.png"], b"a caption", "skip"),
    "truncated.png": (_broken["truncated.png"], b"a caption", "skip"),
    "truncated.jpg": (_broken["truncated.jpg"], b"a caption", "skip"),  # fails only when decoded
    "zero-bytes.png": (b"", b"a caption", "skip"),
    "bomb.png": (png_header_only(30_000, 30_000), b"a caption", "skip"),  # PIL's limit kept
    "no-idat.png": (png_header_only(8, 8), b"a caption", "skip"),  # IndexError inside PIL's verify()
    "one-pixel.png": (encode(pattern_image(5, (1, 1))), b"a caption", "keep"),
    "palette.png": (_unusual["palette.png"], b"a caption", "keep"),
    "cmyk.jpg": (_unusual["cmyk.jpg"], b"a caption", "keep"),
    "gray16.png": (_unusual["gray16.png"], b"a caption", "keep"),
    "not-utf8-caption.png": (encode(pattern_image(6)), b"caf\xe9 \xff\xfe sketch", "keep"),
    "empty-caption.png": (encode(pattern_image(7)), b"   \n", "skip"),
    "no-caption.png": (encode(pattern_image(8)), None, "skip"),
}


def image_folder(folder: Path, name: str, data: bytes, caption: bytes | None) -> Path:
    folder.mkdir(parents=True)
    for i in range(GOOD):
        pattern_image(100 + i).save(folder / f"good-{i}.png")
        (folder / f"good-{i}.txt").write_text(f"a good image {i}")
    (folder / name).write_bytes(data)
    if caption is not None:
        (folder / name).with_suffix(".txt").write_bytes(caption)
    return folder


def imagefolder_recipe(tmp_path: Path, model_dir: Path, folder: Path, **sections) -> Path:
    data = {"adapter": "imagefolder", "options": {"source": str(folder)}}
    return write_recipe(tmp_path, model_dir, None, "lora", data=data, sample={"prompts": []}, **sections)


@pytest.mark.parametrize("name", list(DATA_ROWS))
def test_hostile_data_row_is_skipped_and_counted_or_kept(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    data, caption, expected = DATA_ROWS[name]
    folder = image_folder(tmp_path / "images", name, data, caption)
    recipe = imagefolder_recipe(tmp_path, tmp_path / "no-model-needed", folder)
    with caplog.at_level(logging.WARNING, logger="adaptkit.data"):
        code = main(["data", "preview", str(recipe), "--out", str(tmp_path / "sheet.png")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Traceback" not in out.err
    assert Image.open(tmp_path / "sheet.png").size[0] > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if expected == "keep":
        assert f"{GOOD + 1} examples" in out.out and "skipped" not in out.out
        assert not warnings
    else:
        assert "1 rows skipped" in out.out
        assert any(name in w for w in warnings), warnings  # the line names the file (and its row)
    if name == "zero-bytes.png":
        assert any("empty file (0 bytes)" in w for w in warnings)


def test_non_utf8_caption_keeps_the_row_with_replacement_characters(tmp_path: Path) -> None:
    from adaptkit.resolve import load_and_resolve

    folder = image_folder(tmp_path / "images", "x.png", encode(pattern_image(6)), b"caf\xe9 sketch")
    dataset = load_and_resolve(imagefolder_recipe(tmp_path, tmp_path, folder)).dataset.load("train")
    captions = {c for i in range(len(dataset)) for c in dataset[i].captions}
    assert "caf\ufffd sketch" in captions


def test_caption_over_77_tokens_is_truncated_and_counted(tmp_path: Path, tiny_model_dir: Path) -> None:
    from training_helpers import run

    long = " ".join(["a very long caption word"] * 40)
    folder = image_folder(tmp_path / "images", "long.png", encode(pattern_image(9)), long.encode())
    recipe = imagefolder_recipe(tmp_path, tiny_model_dir, folder, train={"steps": 3, "batch_size": 3})
    _, result = run(recipe)
    assert result.truncated_captions == 3  # every step draws every row once (batch of 3 of 3)


def one_error(capsys: pytest.CaptureFixture) -> str:
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    return errors[0]


def test_dataset_folder_with_no_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    assert main(["data", "preview", str(imagefolder_recipe(tmp_path, tmp_path, folder))]) == 2
    line = one_error(capsys)
    assert str(folder) in line and "no data" in line


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "tokenizer"])
def test_base_model_missing_a_component(
    tmp_path: Path, tiny_model_dir: Path, component: str, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.rmtree(model / component)
    recipe = write_recipe(tmp_path, model, None, "lora", sample={"prompts": []})
    assert (
        main(["sample", "--base", str(model), "--prompt", "x", "--steps", "1", "--out", str(tmp_path / "s.png")]) == 2
    )
    line = one_error(capsys)
    assert "model.base" in line and component in line
    assert recipe.is_file()


def test_output_dir_holding_another_run_is_refused(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    first = write_recipe(tmp_path, tiny_model_dir, None, "lora", name="same", sample={"prompts": []})
    run_dir = tmp_path / "runs" / "same"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.toml").write_text('[model]\nbase = "another model"\n')
    (run_dir / "result.json").write_text("{}")  # finished work (a folder without any is started again)
    assert main(["run", str(first), "--no-progress"]) == 2
    line = one_error(capsys)
    assert str(run_dir) in line and ("--resume" in line or "--overwrite" in line)
    assert (run_dir / "recipe.toml").read_text().startswith('[model]\nbase = "another model"')


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A finished 1-step LoRA run directory."""
    from training_helpers import run

    folder = tmp_path_factory.mktemp("lora-run")
    data = write_naruto(folder / "naruto", rows=2).path
    run(write_recipe(folder, tiny_model_dir, data, "lora", train={"steps": 1}, sample={"prompts": []}))
    return folder / "runs" / "run"


def _wrong_shapes(path: Path) -> None:
    """Rewrite a LoRA file as if made for another architecture: every tensor one row wider."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    save_file({k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in state.items()}, str(path), metadata)


def _pickle_instead(path: Path) -> None:
    """Replace the safetensors file with a pickle (``.bin``), as older trainers write."""
    import torch

    torch.save({"weights": torch.zeros(2)}, path.with_suffix(".bin"))
    path.unlink()


def _pickle_named_safetensors(path: Path) -> None:
    import torch

    torch.save({"weights": torch.zeros(2)}, path)


ADAPTER_DAMAGE = {
    "other-architecture": (_wrong_shapes, "cannot load this LoRA onto the model"),
    "pickle-bin": (_pickle_instead, "pickle adapter weights are refused"),
    "pickle-named-safetensors": (_pickle_named_safetensors, "not a readable safetensors file"),
}


@pytest.mark.parametrize("damage", list(ADAPTER_DAMAGE))
def test_unusable_adapter_file(tmp_path: Path, lora_run: Path, damage: str, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(lora_run, run_dir)
    weights = run_dir / "adapter" / "pytorch_lora_weights.safetensors"
    spoil, expected = ADAPTER_DAMAGE[damage]
    spoil(weights)
    args = ["sample", "--adapter", str(run_dir), "--prompt", "x", "--steps", "1", "--out", str(tmp_path / "s.png")]
    assert main(args) == 2
    line = one_error(capsys)
    assert str(run_dir / "adapter") in line and expected in line, line
    assert not (tmp_path / "s.png").exists()


TORCHRUN = Path(sys.executable).parent / "torchrun"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_refusal_on_the_main_process_stops_every_process(tmp_path: Path, tiny_model_dir: Path) -> None:
    """torchrun, 2 processes: the main process refuses the run directory; no rank hangs, each says why."""
    data = write_naruto(tmp_path / "naruto", rows=4).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="taken", sample={"prompts": []})
    run_dir = tmp_path / "runs" / "taken"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.toml").write_text('[model]\nbase = "another model"\n')
    (run_dir / "result.json").write_text("{}")
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "adaptkit.cli", "run"]
    done = subprocess.run(
        [*command, str(recipe), "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,  # a hanging rank would hit this
    )
    assert done.returncode != 0
    said = f"error: {run_dir}: output directory already holds a run"
    assert done.stderr.count(said) == 2, done.stdout + done.stderr  # one per rank
