"""Nothing in a checkpoint, model, dataset or recipe runs code unless the recipe says so."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
import torch

import adaptkit
from adaptkit.errors import UserError
from adaptkit.training.checkpoint import MANIFEST, STATE, load_checkpoint, write_checkpoint

SOURCE = Path(adaptkit.__file__).parent
MARKER_ENV = "ADAPTKIT_TEST_MARKER"


class RunsCode:
    """Unpickling this writes a marker file: the proof that code ran."""

    def __reduce__(self):
        return (Path(os.environ[MARKER_ENV]).write_text, ("code ran",))


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called == name:
                yield node


def test_no_code_executing_loaders_in_the_package() -> None:
    """No ``pickle.load``/``eval``/``exec``, and no ``torch.load(..., weights_only=False)``, anywhere in adaptkit."""
    offenders = []
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for name in ("eval", "exec", "loads"):
            offenders += [
                f"{path}:{c.lineno} {name}"
                for c in _calls(tree, name)
                if (_is_pickle(c) if name == "loads" else isinstance(c.func, ast.Name))  # not module.eval()
            ]
        for call in _calls(tree, "load"):
            if _is_pickle(call):
                offenders.append(f"{path}:{call.lineno} pickle.load")
            for keyword in call.keywords:
                if keyword.arg == "weights_only" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is True
                ):
                    offenders.append(f"{path}:{call.lineno} weights_only={ast.unparse(keyword.value)}")
    assert not offenders


def _is_pickle(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and ast.unparse(call.func.value) in {"pickle", "cPickle", "dill"}


def test_torch_load_defaults_to_weights_only() -> None:
    """``torch.load`` calls without ``weights_only`` rely on torch's default, which must be the safe one."""
    from torch.serialization import _default_to_weights_only

    assert _default_to_weights_only(None) is True


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    path = write_checkpoint(tmp_path / "ckpt", 2, {"w": torch.ones(2)}, {"optimizer": {}}, {})
    torch.save({"optimizer": RunsCode()}, path / STATE)
    manifest = json.loads((path / MANIFEST).read_text())  # an attacker fixes the hash as well
    manifest["files"][STATE] = hashlib.sha256((path / STATE).read_bytes()).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="cannot load the checkpoint safely"):
        load_checkpoint(path)
    assert not marker.exists()


def test_model_trust_remote_code_is_off_by_default_and_warns_when_set(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from diffusers import StableDiffusionPipeline

    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection

    seen = []
    original = StableDiffusionPipeline.from_pretrained.__func__

    def spy(cls, location, **kwargs):
        seen.append(kwargs)
        return original(cls, location, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", classmethod(spy))
    with caplog.at_level(logging.WARNING, logger="adaptkit.models"):
        load_base_model(ModelSection(base=str(tiny_model_dir)))
        assert not caplog.records
        load_base_model(ModelSection(base=str(tiny_model_dir), trust_remote_code=True))
    assert "trust_remote_code" not in seen[0] and seen[0]["use_safetensors"] is True
    assert seen[1]["trust_remote_code"] is True
    assert [r.getMessage() for r in caplog.records if "trust_remote_code" in r.getMessage()]


def test_python_files_beside_a_recipe_or_dataset_are_not_imported(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Only installed entry points and modules the recipe names load; a stray .py file never runs."""
    from adaptkit.cli import main
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import write_recipe

    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    data = write_naruto(tmp_path / "naruto", rows=2).path
    payload = f"import os, pathlib; pathlib.Path(os.environ[{MARKER_ENV!r}]).write_text('code ran')\n"
    for folder in (tmp_path, data):
        for name in ("adaptkit_plugin.py", "plugin.py", "__init__.py"):
            (folder / name).write_text(payload)
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", sample={"prompts": []})
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(recipe)]) == 0
    assert main(["data", "preview", str(recipe), "--out", str(tmp_path / "sheet.png")]) == 0
    assert not marker.exists()

    # a loading script named after the dataset folder (the old datasets convention) is refused, not run
    (data / "naruto.py").write_text(payload)
    capsys.readouterr()
    assert main(["data", "preview", str(recipe), "--out", str(tmp_path / "sheet.png")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "naruto.py" in line and "scripts are no longer supported" in line
    assert not marker.exists()
