"""The example plugins in plugins/ as installed distributions: listed with their names, usable in a run.

Assumes both are installed (CI: ``pip install -e plugins/adaptkit-lokr -e plugins/adaptkit-wikiart``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.cli import main

from training_helpers import write_recipe

EXPECTED = {
    ("method", "lokr"): ("lokr", "adaptkit-lokr"),
    ("method", "oft"): ("lokr", "adaptkit-lokr"),
    ("dataset", "wikiart"): ("wikiart", "adaptkit-wikiart"),
}


@pytest.fixture(autouse=True)
def _all_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADAPTKIT_LOAD_PLUGINS", raising=False)


def test_plugins_command_shows_them_with_their_distribution_names(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["plugins", "--json"]) == 0
    rows = {(row["kind"], row["name"]): row for row in json.loads(capsys.readouterr().out)}
    for key, (plugin, distribution) in EXPECTED.items():
        assert key in rows, f"{key} missing: pip install -e plugins/{distribution}"
        assert (rows[key]["plugin"], rows[key]["distribution"]) == (plugin, distribution)
        assert rows[key]["description"]
    assert rows[("method", "lora")]["distribution"] == "adaptkit"


def test_the_allowlist_can_leave_one_out(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ADAPTKIT_LOAD_PLUGINS", "adaptkit-wikiart")
    capsys.readouterr()
    assert main(["plugins", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert "wikiart" in names and "lokr" not in names and "lora" in names


def test_a_run_trains_lokr_on_wikiart_paintings(tmp_path: Path, tiny_model_dir: Path) -> None:
    from adaptkit_wikiart.testing import write_wikiart

    source = write_wikiart(tmp_path / "wikiart")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lokr",
        data={"adapter": "wikiart", "options": {"source": str(source), "artists": ["claude-monet"]}},
        method={"options": {"rank": 2}},
        train={"steps": 2},
        sample={"prompts": ["a landscape painting by claude monet"], "every": 0},
    )
    assert main(["run", str(recipe), "--no-progress"]) == 0
    run_dir = tmp_path / "runs" / "run"
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"]) == ("LOKR", 2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
