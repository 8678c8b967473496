"""``adaptkit cache info`` and ``adaptkit cache clear`` on the user cache folder or ``--dir``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cache_helpers import write_entry

from adaptkit.cli import main
from adaptkit.training.cache_folder import CACHE_DIR_ENV, LIMIT_ENV


@pytest.fixture()
def latents(tmp_path, monkeypatch) -> Path:
    """A user cache folder holding three entries of 1000 bytes and a file of the user's."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "latents"
    for number in range(3):
        write_entry(folder, number, 1000, 1)
    (folder / "README").write_text("the user's note")
    return folder


def test_info_prints_the_folder_entries_size_and_limit(latents, monkeypatch, capsys) -> None:
    monkeypatch.setenv(LIMIT_ENV, "2.5")
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"folder:  {latents}",
        "entries: 3",
        "size:    3.0 kB (3000 bytes)",
        f"limit:   2.5 GB (${LIMIT_ENV}; least recently used entries go first)",
    ]


def test_info_on_a_folder_not_created_yet(tmp_path, capsys) -> None:
    assert main(["cache", "info", "--dir", str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert f"folder:  {tmp_path / 'new'} (not created yet)" in out and "entries: 0" in out


def test_info_with_a_bad_limit_is_one_line(latents, monkeypatch, capsys) -> None:
    monkeypatch.setenv(LIMIT_ENV, "big")
    assert main(["cache", "info"]) == 2
    expected = f"error: {LIMIT_ENV} = 'big': not a size in gigabytes; use a positive number such as 20\n"
    assert capsys.readouterr().err == expected


def test_clear_with_yes_deletes_only_the_entries(latents, capsys) -> None:
    assert main(["cache", "clear", "--yes"]) == 0
    assert capsys.readouterr().out == f"deleted 3 cache entries (latents and captions, 3.0 kB) from {latents}\n"
    assert [path.name for path in latents.rglob("*") if path.is_file()] == ["README"]
    assert main(["cache", "info"]) == 0 and "entries: 0" in capsys.readouterr().out


def test_clear_asks_first(latents, monkeypatch, capsys) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["cache", "clear"]) == 1
    assert "nothing deleted" in capsys.readouterr().out and len(list(latents.rglob("*.safetensors"))) == 3
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(["cache", "clear"]) == 0
    assert list(latents.rglob("*.safetensors")) == []


def test_clear_without_a_terminal_needs_yes(latents, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["cache", "clear"]) == 2
    expected = f"error: adaptkit cache clear: {latents} holds 3 entries; pass --yes to delete them\n"
    assert capsys.readouterr().err == expected
    assert len(list(latents.rglob("*.safetensors"))) == 3


def test_clear_refuses_the_root_folder(capsys) -> None:
    assert main(["cache", "clear", "--dir", "/", "--yes"]) == 2
    assert "refusing to clear the root or home folder" in capsys.readouterr().err
