"""Every subcommand, given bad arguments in-process (``adaptkit.cli.main``): exit status 2 (74 for an I/O
failure), exactly one ``error: ...`` line on stderr that names what is wrong, and never a traceback.

argparse's own usage errors (a missing argument, a number that is not one) exit 2 with a usage line and
one ``adaptkit ...: error:`` line; they are checked for having no traceback either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adaptkit.cli import SUBCOMMANDS, main
from adaptkit.testing.datasets import write_naruto
from adaptkit.training import checkpoint as ckpt

from training_helpers import write_recipe


@dataclass(frozen=True)
class World:
    """Files the bad arguments point at (nothing here is ever loaded as a model)."""

    root: Path
    recipe: Path  # a valid recipe; its run folder is ``run``
    run: Path  # a run folder: recipe.toml, an empty adapter/ and one corrupt checkpoint
    folder: Path

    def __call__(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> World:
    root = tmp_path_factory.mktemp("bad-args")
    data = write_naruto(root / "naruto", rows=2).path
    recipe = write_recipe(root, tiny_model_dir, data, "lora", name="fake")
    run = root / "runs" / "fake"
    (run / "adapter").mkdir(parents=True)
    (run / "recipe.toml").write_text(recipe.read_text())
    step = ckpt.write_checkpoint(run / "checkpoints", 1, {"unet.w": torch.zeros(2)}, {"ema": None}, {})
    (step / ckpt.TRAINABLE).write_bytes((step / ckpt.TRAINABLE).read_bytes()[:-1] + b"\x01")
    folder = root / "folder"
    folder.mkdir()
    (root / "garbage.safetensors").write_bytes(b"garbage, not a header")
    (root / "existing.safetensors").write_bytes(b"the user's file")
    (root / "notes.txt").write_text("notes")
    (root / "bad.json").write_text("{}")
    (root / "latin1.toml").write_bytes(b'[model]\nbase = "caf\xe9"\n')
    (root / "broken.toml").write_text("[train\nsteps = 1\n")
    return World(root, recipe, run, folder)


def sample(*extra: str) -> list[str]:
    return ["sample", "--prompt", "a ninja", *extra]


# (id, argv from the world, exit status, fragment of the one error line)
CASES = [
    ("run-missing-recipe", lambda w: ["run", w("missing.toml")], 2, "no such recipe file"),
    ("run-folder-as-recipe", lambda w: ["run", str(w.folder)], 2, "not a recipe file (a folder?)"),
    ("run-bad-set-value", lambda w: ["run", str(w.recipe), "--set", "train.steps=0"], 2, "--set train.steps=0: train"),
    ("run-unknown-set-key", lambda w: ["run", str(w.recipe), "--set", "trian.steps=1"], 2, "trian: unknown key"),
    ("run-set-without-value", lambda w: ["run", str(w.recipe), "--set", "train.steps"], 2, "expected KEY.PATH=VALUE"),
    (
        "run-resume-corrupt-checkpoint",
        lambda w: ["run", str(w.recipe), "--resume"],
        2,
        "step-000001: trainable.safetensors does not match its SHA-256",
    ),
    ("recipes-unknown-name", lambda w: ["recipes", "--path", "nosuch"], 2, "nor a shipped recipe of that name"),
    ("validate-not-utf8", lambda w: ["validate", w("latin1.toml")], 2, "not UTF-8"),
    ("validate-invalid-toml", lambda w: ["validate", w("broken.toml")], 2, "invalid TOML"),
    ("validate-table-as-number", lambda w: ["validate", str(w.recipe), "--set", "train=5"], 2, "table ([train])"),
    ("plugins-unknown-module", lambda w: ["plugins", "--module", "no_such_module_xyz"], 2, "cannot import module"),
    ("plugins-missing-file", lambda w: ["plugins", "--module", w("missing.py")], 2, "no such file"),
    ("data-preview-missing-recipe", lambda w: ["data", "preview", w("missing.toml")], 2, "no such recipe file"),
    ("data-export-folder-recipe", lambda w: ["data", "export", str(w.folder), w("out")], 2, "not a recipe file"),
    ("cache-info-file-as-dir", lambda w: ["cache", "info", "--dir", w("notes.txt")], 2, "notes.txt: not a folder"),
    ("cache-clear-home", lambda w: ["cache", "clear", "--dir", "~", "--yes"], 2, "refusing to clear the root or home"),
    ("sample-guidance-nan", lambda w: sample("--base", "embedded:tiny-sd", "--guidance", "nan"), 2, "finite number"),
    ("sample-guidance-inf", lambda w: sample("--base", "embedded:tiny-sd", "--guidance", "inf"), 2, "finite number"),
    ("sample-guidance-negative", lambda w: sample("--base", "x/y", "--guidance", "-1"), 2, "--guidance -1.0: Input"),
    ("sample-steps-negative", lambda w: sample("--base", "x/y", "--steps", "-3"), 2, "--steps -3: Input should be"),
    ("sample-steps-too-many", lambda w: sample("--base", "x/y", "--steps", "5000"), 2, "less than or equal to 1000"),
    ("sample-resolution-odd", lambda w: sample("--base", "x/y", "--resolution", "60"), 2, "must be a multiple of 8"),
    ("sample-resolution-zero", lambda w: sample("--base", "x/y", "--resolution", "0"), 2, "--resolution 0: Input"),
    ("sample-out-folder", lambda w: sample("--base", "x/y", "--out", str(w.folder)), 2, "is a folder; give an image"),
    ("sample-out-text-file", lambda w: sample("--base", "x/y", "--out", w("notes.txt")), 2, "not an image file name"),
    ("sample-out-no-suffix", lambda w: sample("--base", "x/y", "--out", w("grid")), 2, "ending in .png"),
    ("sample-no-model", lambda w: sample(), 2, "give --base MODEL, --adapter RUN_DIR, or both"),
    ("sample-missing-adapter", lambda w: sample("--adapter", w("missing")), 2, "not an adaptkit run directory"),
    ("sample-checkpoint-alone", lambda w: sample("--base", "x/y", "--checkpoint", "step-1"), 2, "needs --adapter"),
    (
        "sample-unknown-checkpoint",
        lambda w: sample("--adapter", str(w.run), "--checkpoint", "step-9"),
        2,
        "--checkpoint step-9: no such checkpoint",
    ),
    (
        "sample-corrupt-checkpoint",
        lambda w: sample("--adapter", str(w.run), "--checkpoint", "step-1"),
        2,
        "trainable.safetensors does not match its SHA-256",
    ),
    ("sample-base-missing", lambda w: sample("--base", w("nope/model")), 2, "/nope/model: model.base: no such folder"),
    (
        "sample-base-garbage-file",
        lambda w: sample("--base", w("garbage.safetensors")),
        2,
        "is not a readable safetensors checkpoint",
    ),
    ("sample-unknown-sampler", lambda w: sample("--base", "embedded:tiny-sd", "--sampler", "nope"), 2, "'nope'"),
    ("sample-option-syntax", lambda w: sample("--base", "x/y", "--sampler-option", "order"), 2, "expected KEY=VALUE"),
    ("export-missing-run", lambda w: ["export", w("missing"), "--format", "kohya"], 2, "no such run directory"),
    ("export-not-a-run", lambda w: ["export", str(w.folder), "--format", "kohya"], 2, "not an adaptkit run directory"),
    (
        "export-out-exists",
        lambda w: ["export", str(w.run), "--format", "kohya", "--out", w("existing.safetensors")],
        2,
        "the file exists; pass --overwrite",
    ),
    (
        "export-out-folder-for-a-file-format",
        lambda w: ["export", str(w.run), "--format", "kohya", "--out", str(w.folder)],
        2,
        "a kohya export is one file",
    ),
    ("export-format-misfit", lambda w: ["export", str(w.run), "--format", "single-file"], 2, "does not fit method"),
    (
        "export-corrupt-checkpoint",
        lambda w: ["export", str(w.run), "--format", "kohya", "--checkpoint", "step-000001"],
        2,
        "is not a complete checkpoint",
    ),
    (
        "import-missing-file",
        lambda w: ["import", w("missing.safetensors"), "--base", "embedded:tiny-sd", "--out", w("imported")],
        2,
        "no such file",
    ),
    (  # the file is checked before the base model loads: a base that cannot load does not hide it
        "import-missing-file-before-the-base",
        lambda w: ["import", w("missing.safetensors"), "--base", w("no-such-model"), "--out", w("imported")],
        2,
        "missing.safetensors: no such file",
    ),
    (
        "import-garbage-file",
        lambda w: ["import", w("garbage.safetensors"), "--base", "embedded:tiny-sd", "--out", w("imported")],
        2,
        "not a readable safetensors file",
    ),
    ("eval-missing-run", lambda w: ["eval", w("missing")], 2, "not an adaptkit run directory"),
    ("eval-unknown-checkpoints", lambda w: ["eval", str(w.run), "--checkpoints", "nope"], 2, "--checkpoints nope"),
    ("eval-tolerance-range", lambda w: ["eval", str(w.run), "--tolerance", "2"], 2, "must be a fraction in [0, 1)"),
    ("eval-set-train-key", lambda w: ["eval", str(w.run), "--set", "train.steps=3"], 2, "only eval.* keys"),
    ("compare-missing-runs", lambda w: ["compare", w("a"), w("b")], 2, "not an adaptkit run directory"),
    ("compare-tolerance-nan", lambda w: ["compare", str(w.run), str(w.run), "--tolerance", "nan"], 2, "--tolerance"),
    ("caption-missing-folder", lambda w: ["caption", w("no-such-folder")], 2, "no such folder"),
    ("sweep-missing-space", lambda w: ["sweep", str(w.recipe), "--space", w("no-space.toml")], 2, "no such space file"),
    (
        "sweep-workers-zero",
        lambda w: ["sweep", str(w.recipe), "--space", w("notes.txt"), "--workers", "0"],
        2,
        "--workers 0",
    ),
    ("bench-steps-zero", lambda w: ["bench", "--steps", "0"], 2, "--steps = 0 is too small"),
    ("bench-resolution-odd", lambda w: ["bench", "--resolution", "60"], 2, "must be a multiple of 8"),
    ("bench-model-missing", lambda w: ["bench", "--model", w("nope")], 2, "--model: no such folder or file"),
    ("bench-file-missing", lambda w: ["bench", "--file", w("missing.toml")], 2, "--file: no such file"),
    ("bench-compare-not-a-report", lambda w: ["bench", "--compare", w("bad.json")], 2, "not an adaptkit bench report"),
    ("ui-port-zero", lambda w: ["ui", "--port", "0"], 2, "--port 0: give a port between 1 and 65535"),
    ("ui-runs-is-a-file", lambda w: ["ui", "--runs", w("notes.txt")], 2, "notes.txt: not a folder"),
    ("ui-concurrent-zero", lambda w: ["ui", "--concurrent", "0"], 2, "--concurrent 0: give at least 1"),
]

#: argparse's own usage errors: argv and a fragment of its error line.
USAGE_CASES = [
    ("unknown-command", lambda w: ["nosuch"], "invalid choice: 'nosuch'"),
    ("run-no-recipe", lambda w: ["run"], "the following arguments are required: RECIPE"),
    ("export-no-run", lambda w: ["export"], "the following arguments are required: RUN_DIR, --format"),
    ("export-unknown-format", lambda w: ["export", str(w.run), "--format", "zip"], "invalid choice: 'zip'"),
    ("sample-no-prompt", lambda w: ["sample", "--base", "x/y"], "the following arguments are required: --prompt"),
    ("sample-steps-not-a-number", lambda w: sample("--steps", "many"), "invalid int value: 'many'"),
    ("import-no-base", lambda w: ["import", w("x.safetensors")], "required: --base, --out"),
    ("compare-no-runs", lambda w: ["compare"], "the following arguments are required: RUN_DIR"),
    ("data-preview-rows-zero", lambda w: ["data", "preview", str(w.recipe), "--rows", "0"], "positive integer"),
    ("sweep-no-space", lambda w: ["sweep", str(w.recipe)], "the following arguments are required: --space"),
    ("bench-batch-not-a-number", lambda w: ["bench", "--batch-size", "x"], "invalid int value: 'x'"),
    ("ui-port-not-a-number", lambda w: ["ui", "--port", "http"], "invalid int value: 'http'"),
]


def invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


@pytest.mark.parametrize("make_argv, status, fragment", [pytest.param(a, s, f, id=i) for i, a, s, f in CASES])
def test_bad_argument_is_one_error_line(world: World, capsys, make_argv, status: int, fragment: str) -> None:
    code, err = invoke(make_argv(world), capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == status, (code, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("make_argv, fragment", [pytest.param(a, f, id=i) for i, a, f in USAGE_CASES])
def test_usage_error_is_argparse_usage_and_one_error_line(world: World, capsys, make_argv, fragment: str) -> None:
    code, err = invoke(make_argv(world), capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert lines[0].startswith("usage: adaptkit") and errors == [lines[-1]], lines
    assert fragment in lines[-1], lines[-1]


def test_every_subcommand_is_given_bad_arguments() -> None:
    probed = {argv(World(Path("r"), Path("r.toml"), Path("run"), Path("f")))[0] for _, argv, _, _ in CASES}
    assert probed == set(SUBCOMMANDS)
    assert len(CASES) >= 25


def test_ui_without_its_extra_is_one_line_naming_it(world: World, capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, err = invoke(["ui", "--runs", str(world.folder)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and lines == [
        "error: adaptkit ui needs starlette and uvicorn: pip install 'adaptkit[ui]' (missing: uvicorn)"
    ]
