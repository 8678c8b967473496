"""Every hook has a test named after it, documentation, and behaves as documented."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from adaptkit.cli import main
from adaptkit.cli.hookdocs import hook_functions, hook_reference
from adaptkit.testing.datasets import write_naruto

from training_helpers import run, write_recipe

ROOT = Path(__file__).resolve().parent.parent

RECORDER = """
import json
from pathlib import Path

import adaptkit
from pydantic import Field

LOG = Path(__file__).with_suffix(".log")


def record(event, **values):
    with LOG.open("a") as handle:
        handle.write(json.dumps({"event": event, **values}) + "\\n")


class Constant(adaptkit.Metric):
    name = "constant"
    description = "always 1.0"

    def compute(self, context):
        return {"constant": 1.0}


@adaptkit.hookimpl
def register_metrics(register):
    register(Constant)


@adaptkit.hookimpl
def check_recipe(recipe):
    if recipe.train.seed == 13:
        return ["train.seed: 13 is unlucky (the recorder plugin refuses it)"]


@adaptkit.hookimpl
def on_train_start(run):
    record("start", run_dir=str(run.run_dir), main=run.is_main_process)


@adaptkit.hookimpl
def on_step_end(run, step, logs):
    record("step", step=step, loss=logs["loss"])


@adaptkit.hookimpl
def on_checkpoint(run, path):
    record("checkpoint", path=str(path), exists=Path(path, "manifest.json").is_file())


@adaptkit.hookimpl
def on_train_end(run, result):
    record("end", steps=result.steps, adapter=Path(result.adapter_dir).is_dir())
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    module = tmp_path / "recorder.py"
    module.write_text(textwrap.dedent(RECORDER))
    return module


def events(module: Path) -> list[dict]:
    import json

    log = module.with_suffix(".log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def trained(tmp_path: Path, tiny_model_dir: Path, recorder: Path) -> list[dict]:
    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data,
        "lora",
        train={"steps": 4, "log_every": 2},
        checkpoint={"every": 2},
        sample={"prompts": []},
        plugins={"modules": ["recorder.py"]},
    )
    run(recipe)
    return events(recorder)


def test_every_hook_is_documented_and_tested() -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name, fn in hook_functions().items():
        assert inspect.getdoc(fn), f"hook {name} has no docstring"
        assert f"def test_{name}(" in tests, f"no test named test_{name}"


def test_hook_reference_is_current() -> None:
    assert (ROOT / "docs" / "hooks.md").read_text() == hook_reference(), (
        "run: python -m adaptkit.cli.hookdocs > docs/hooks.md"
    )


def test_register_metrics(recorder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--module", str(recorder), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"name": "constant"' in out and '"kind": "metric"' in out


def registered(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """``adaptkit plugins --json`` as {kind: {name: plugin}}, adaptkit's own only (installed plugins left out)."""
    import json

    assert main(["plugins", "--json"]) == 0
    by_kind: dict[str, dict[str, str]] = {}
    for row in json.loads(capsys.readouterr().out):
        if row["distribution"] == "adaptkit":
            by_kind.setdefault(row["kind"], {})[row["name"]] = row["plugin"]
    return by_kind


def test_register_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    """The built-ins arrive through the same registration hooks as any plugin's."""
    datasets = registered(capsys)["dataset"]
    assert set(datasets) >= {"newyorker", "pokemon", "naruto", "simpsons", "hub", "imagefolder", "embedded-styles"}
    assert datasets.pop("embedded-styles") == "adaptkit.embedded.plugin"  # the embedded world is a plugin too
    assert set(datasets.values()) == {"adaptkit.builtins.datasets"}


def test_register_base_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``name:model`` bases come from plugins: the embedded world's and the test kit's, and a recipe's own."""
    assert registered(capsys)["base_model"] == {
        "embedded": "adaptkit.embedded.plugin",
        "testing": "adaptkit.testing.bases",
    }
    from adaptkit.errors import UserError
    from adaptkit.models import resolve_base
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.recipe import ModelSection
    from adaptkit.testing.tiny_model import save_tiny_pipeline

    save_tiny_pipeline(tmp_path / "house-model", seed=0)
    module = tmp_path / "house_bases.py"
    module.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            import adaptkit

            class HouseModels(adaptkit.BaseModels):
                name = "house"
                description = "Our own models."

                def models(self):
                    return ["v1"]

                def locate(self, model):
                    return Path({str(tmp_path)!r}) / "house-model"

            @adaptkit.hookimpl
            def register_base_models(register):
                register(HouseModels)
            """
        )
    )
    named = get_plugin_manager([str(module)]).collect().base_models
    source = resolve_base(ModelSection(base="house:v1"), named)
    assert (source.kind, source.location) == ("named", str(tmp_path / "house-model"))
    with pytest.raises(UserError, match=r"model.base: no house model 'v2' \(available: house:v1\)"):
        resolve_base(ModelSection(base="house:v2"), named)
    with pytest.raises(UserError, match="not a Hub id"):  # an unregistered name is not mistaken for one
        resolve_base(ModelSection(base="house:v1"))


def test_register_model_families(capsys: pytest.CaptureFixture[str]) -> None:
    """Model families arrive through their hook (a plugin's family: tests/test_model_families.py)."""
    assert registered(capsys)["model_family"] == {
        f: "adaptkit.builtins.families" for f in ("sd1", "sd2", "sdxl", "sd3")
    }


def test_plugins_table_never_cuts_a_name(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptkit.cli import common

    monkeypatch.setattr(common.console, "_width", 80)
    monkeypatch.setattr(common.console, "soft_wrap", False)
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    names = [row["name"] for rows in registered(capsys).values() for row in [{"name": n} for n in rows]]
    assert max(len(line) for line in table.splitlines()) <= 80
    for name in names:
        assert f" {name} " in table, f"{name} is cut in an 80-column table"


def test_register_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert registered(capsys)["method"] == {m: "adaptkit.builtins.methods" for m in ("full", "lora", "loha")}


def test_register_samplers(capsys: pytest.CaptureFixture[str]) -> None:
    names = ("ddim", "pndm", "dpm-solver", "flow-euler")
    assert registered(capsys)["sampler"] == {s: "adaptkit.builtins.samplers" for s in names}


def test_check_recipe(tmp_path: Path, recorder: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(
        tmp_path, tiny_model_dir, tmp_path, "lora", train={"seed": 13}, plugins={"modules": ["recorder.py"]}
    )
    assert main(["validate", str(recipe)]) == 2
    assert f"{recipe}: train.seed: 13 is unlucky" in capsys.readouterr().err


def test_on_train_start(trained: list[dict]) -> None:
    assert trained[0]["event"] == "start" and trained[0]["main"] is True


def test_on_step_end(trained: list[dict]) -> None:
    steps = [e for e in trained if e["event"] == "step"]
    assert [e["step"] for e in steps] == [2, 4] and all(e["loss"] > 0 for e in steps)


def test_on_checkpoint(trained: list[dict]) -> None:
    checkpoints = [e for e in trained if e["event"] == "checkpoint"]
    assert [Path(e["path"]).name for e in checkpoints] == ["step-000002", "step-000004"]
    assert all(e["exists"] for e in checkpoints)  # called after the checkpoint is complete


def test_on_train_end(trained: list[dict]) -> None:
    assert trained[-1] == {"event": "end", "steps": 4, "adapter": True}


def test_trace_plugins_prints_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ADAPTKIT_TRACE_PLUGINS", "1")
    assert main(["plugins", "--json"]) == 0
    err = capsys.readouterr().err
    assert "[adaptkit trace] register_methods(register=<adaptkit.builtins.methods>)" in err
    assert "[adaptkit trace] register_methods -> None" in err


def test_recipe_reference_is_current() -> None:
    from adaptkit.recipe.docs import recipe_reference

    text = recipe_reference()
    assert (ROOT / "docs" / "recipes.md").read_text() == text, "run: python -m adaptkit.recipe.docs > docs/recipes.md"
    for key in ("`steps`", "`snr_gamma`", "`[ema]`", "`dpm-solver`", "`solver_order`", "`newyorker`", "`rank`"):
        assert key in text
