"""``adaptkit caption FOLDER`` with a tiny BLIP built in code, offline: sidecars for the images that have
none, the same captions every time, a prefix, overwrite, an unreadable file named, and the
imagefolder adapter reading what it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptkit.cli import main
from adaptkit.data.captioning import Captioner
from adaptkit.testing.datasets import pattern_image
from adaptkit.testing.tiny_captioner import save_tiny_captioner


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_captioner(tmp_path_factory.mktemp("blip") / "tiny-blip")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def images_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(3):
        pattern_image(i).save(root / f"img_{i}.png")
    (root / "img_2.txt").write_text("my own caption\n", encoding="utf-8")
    return root


def test_captions_the_images_without_one_and_keeps_the_rest(tmp_path: Path, captioner_dir: Path, capsys) -> None:
    folder = images_folder(tmp_path / "images")
    args = ["caption", str(folder), "--model", str(captioner_dir), "--no-progress", "--max-new-tokens", "6"]
    assert main([*args, "--prefix", "sks"]) == 0
    assert "captioned 2, skipped 1 that already had a caption" in capsys.readouterr().out
    assert (folder / "img_2.txt").read_text() == "my own caption\n"
    expected = Captioner.load(str(captioner_dir), 6).caption([pattern_image(0), pattern_image(1)])
    for i, caption in enumerate(expected):
        assert (folder / f"img_{i}.txt").read_text() == " ".join(p for p in ("sks", caption) if p) + "\n"

    assert main(args) == 0  # nothing left to do: the model is not even loaded
    assert "captioned 0, skipped 3" in capsys.readouterr().out
    assert main([*args, "--overwrite"]) == 0
    assert "captioned 3, skipped 0" in capsys.readouterr().out
    assert (folder / "img_0.txt").read_text() == expected[0] + "\n"  # overwritten, without the prefix

    from adaptkit.data.loading import build_adapter

    examples = build_adapter("imagefolder", {"source": str(folder)}).load()
    assert sorted(examples[i].captions[0] for i in range(len(examples))) == sorted(
        (folder / f"img_{i}.txt").read_text().strip() for i in range(3)
    )


def test_an_unreadable_image_is_named_and_the_others_are_captioned(tmp_path: Path, captioner_dir: Path, capsys):
    folder = images_folder(tmp_path / "images")
    (folder / "broken.jpg").write_bytes(b"not an image")
    assert main(["caption", str(folder), "--model", str(captioner_dir), "--no-progress"]) == 0
    assert "captioned 2, skipped 1 that already had a caption; unreadable: broken.jpg" in capsys.readouterr().out
    assert not (folder / "broken.txt").exists()


def test_a_missing_folder_or_model_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["caption", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such folder"
    folder = images_folder(tmp_path / "images")
    assert main(["caption", str(folder), "--model", "someone/not-cached-captioner", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --model someone/not-cached-captioner: cannot load an image-to-text model (offline, and not in "
        "the local Hub cache); pass --model a local folder"
    ]
