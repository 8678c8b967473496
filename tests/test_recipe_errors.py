"""Malformed recipes: exit status 2, one line per error naming the key, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptkit.cli import main

VALID = """\
[model]
base = "embedded:tiny-sd"

[data]
adapter = "pokemon"
resolution = 64
[data.options]
language = "en"

[method]
name = "lora"
[method.options]
rank = 4

[train]
steps = 10
learning_rate = 1e-4
lr_warmup_steps = 2

[ema]
decay = 0.99

[sample]
sampler = "dpm-solver"
seeds = [0, 1]
[sample.options]
solver_order = 2
"""


def _edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


# (id, recipe text, expected substrings: one per expected error line)
CASES = [
    ("toml-syntax", _edit("[train]", "[train"), ["invalid TOML", "at line 15, column 7"]),
    ("toml-duplicate-key", _edit("steps = 10", "steps = 10\nsteps = 11"), ["invalid TOML", "line"]),
    ("unknown-key", _edit("steps = 10", "stepz = 10"), ["train.stepz: unknown key (valid: steps, batch_size"]),
    ("unknown-section", VALID + "\n[trian]\nsteps = 1\n", ["trian: unknown key (valid: run, model, data"]),
    ("wrong-type", _edit("steps = 10", 'steps = "many"'), ["train.steps:"]),
    ("out-of-range", _edit("steps = 10", "steps = 0"), ["train.steps: Input should be greater than or equal to 1"]),
    (
        "timestep-range-empty",
        _edit("steps = 10", "steps = 10\nmin_timestep = 600\nmax_timestep = 500"),
        ["train: max_timestep (500) must be greater than min_timestep (600)"],
    ),
    ("negative-lr", _edit("learning_rate = 1e-4", "learning_rate = -1.0"), ["train.learning_rate:"]),
    (
        "resolution-not-multiple-of-8",
        _edit("resolution = 64", "resolution = 60"),
        ["data.resolution: must be a multiple of 8"],
    ),
    (
        "bad-literal",
        _edit("lr_warmup_steps = 2", 'lr_warmup_steps = 2\nmixed_precision = "fp8"'),
        ["train.mixed_precision:", "'no', 'fp16' or 'bf16'"],
    ),
    (
        "warmup-exceeds-steps",
        _edit("lr_warmup_steps = 2", "lr_warmup_steps = 20"),
        ["lr_warmup_steps (20) exceeds train.steps (10)"],
    ),
    ("ema-decay-range", _edit("decay = 0.99", "decay = 1.5"), ["ema.decay:"]),
    ("seeds-not-list", _edit("seeds = [0, 1]", "seeds = 3"), ["sample.seeds:"]),
    ("missing-method", VALID.split("[method]")[0] + "[train]\nsteps = 10\n", ["method: required key is missing"]),
    (
        "unknown-dataset",
        _edit('adapter = "pokemon"', 'adapter = "pokemn"'),
        ["data.adapter: unknown dataset 'pokemn' (registered:", "pokemon"],
    ),
    (
        "unknown-method",
        _edit('name = "lora"', 'name = "lorx"'),
        ["method.name: unknown method 'lorx' (registered:", "loha"],
    ),
    (
        "unknown-sampler",
        _edit('sampler = "dpm-solver"', 'sampler = "euler-x"'),
        ["sample.sampler: unknown sampler 'euler-x' (registered:", "ddim"],
    ),
    ("method-option-typo", _edit("rank = 4", "rnk = 4"), ["method.options.rnk: unknown key (valid: rank"]),
    ("method-option-type", _edit("rank = 4", 'rank = "big"'), ["method.options.rank:"]),
    (
        "sampler-option-typo",
        _edit("solver_order = 2", "solver_ordr = 2"),
        ["sample.options.solver_ordr: unknown key (valid:"],
    ),
    ("sampler-option-value", _edit("solver_order = 2", "solver_order = 7"), ["sample.options.solver_order:"]),
    ("dataset-option-value", _edit('language = "en"', 'language = "fr"'), ["data.options.language:"]),
    ("empty-seeds", _edit("seeds = [0, 1]", "seeds = []"), ["sample.seeds:"]),
    (
        "sample-resolution",
        _edit("seeds = [0, 1]", "seeds = [0]\nresolution = 500"),
        ["sample.resolution: must be a multiple of 8"],
    ),
    (
        "plugin-check-recipe",
        VALID + "\n[eval]\nembedded_probes = true\n",
        ["eval.embedded_probes: needs data.adapter = 'embedded-styles' (got 'pokemon')"],
    ),
    (
        "unknown-metric",
        VALID + '\n[eval]\nmetrics = ["kid", "fid"]\n',
        ["eval.metrics: unknown metric 'fid' (registered:", "clip_score", "kid"],
    ),
    (
        "metric-option-typo",
        VALID + '\n[eval]\nmetrics = ["kid"]\n[eval.kid]\nsubset_sise = 50\n',
        ["eval.kid.subset_sise: unknown key (valid:", "subset_size"],
    ),
    (
        "several-errors-at-once",
        _edit("steps = 10", "stepz = 10\nbatch_size = 0"),
        ["train.stepz: unknown key", "train.batch_size:"],
    ),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_malformed_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest, text: str, expected: list[str]
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert all(line.startswith(f"error: {recipe}") for line in lines), lines
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    expected_lines = 2 if "several errors" in request.node.name.replace("-", " ") else 1
    assert len(lines) == expected_lines, lines


def test_valid_recipe_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    assert main(["validate", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "steps = 10" in out and "is valid" in out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such recipe file" in capsys.readouterr().err


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_bytes(b'[model]\nbase = "\xff\xfe"\n')
    assert main(["validate", str(recipe)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps", "expected KEY.PATH=VALUE"),
        ("train.steps=0", "train.steps: Input should be greater than or equal to 1"),
        ("model.base.x=1", "model.base is not a table"),
        ("train..steps=1", "empty key"),
    ],
)
def test_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    assert main(["validate", str(recipe), "--set", override]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps=abc", "--set train.steps=abc: train.steps: Input should be a valid integer"),
        ("method.options.rank=-1", "--set method.options.rank=-1: method.options.rank:"),
        ("method={name='lora', options={rnak=4}}", "--set method={name='lora', options={rnak=4}}: method.options.rnak"),
        ("data.adapter=pokemn", "--set data.adapter=pokemn: data.adapter: unknown dataset 'pokemn'"),
        (" train . steps = abc", "--set  train . steps = abc: train.steps: Input should be a valid integer"),
    ],
)
def test_bad_override_value_names_the_override_not_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    assert main(["validate", str(recipe), "--set", override]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert str(recipe) not in err


def test_file_error_beside_an_override_still_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID.replace("[train]", "[train]\nstepz = 3", 1))
    assert main(["validate", str(recipe), "--set", "train.steps=5"]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}: train.stepz: unknown key" in err
    assert "--set" not in err


def test_override_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    assert main(["validate", str(recipe), "--set", "train.steps=42", "--set", "method.options.rank=16"]) == 0
    out = capsys.readouterr().out
    assert "steps = 42" in out and "rank = 16" in out


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trian.steps=1", "error: --set trian.steps=1: trian: unknown key (valid: run, model, data"),
        ("eval.foo=1", "error: --set eval.foo=1: eval.foo: unknown key (valid: metrics,"),
        ("eval.kid.subset_size=5", "error: --set eval.kid.subset_size=5: eval.kid: an [eval.kid] options table for"),
    ],
)
def test_unknown_key_given_with_set_names_the_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    line = _validate_with_set(tmp_path, capsys, override)
    assert line.startswith(expected), line
    assert str(tmp_path / "recipe.toml") not in line


def _validate_with_set(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str) -> str:
    """The one error line of ``adaptkit validate`` on a valid recipe with ``--set override``."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    assert main(["validate", str(recipe), "--set", override]) == 2
    return _one_error_line(capsys)


def test_unknown_key_in_the_file_beside_a_set_still_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID + "\n[trian]\nsteps = 1\n")
    assert main(["validate", str(recipe), "--set", "train.steps=3"]) == 2
    assert _one_error_line(capsys).startswith(f"error: {recipe}: trian: unknown key")


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert main(["validate", str(recipe)]) == 0
    assert "is valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train=5", "train: must be a table ([train]) (got 5)"),
        ("sample=[1]", "sample: must be a table ([sample]) (got [1])"),
        (
            'data.cache_latents="x"',
            "data.cache_latents: Input should be a valid boolean, unable to interpret input; or 'auto' (got 'x')",
        ),
        ("train.adam_epsilon=inf", "train.adam_epsilon: Input should be a finite number (got inf)"),
        ("sample.guidance=nan", "sample.guidance: Input should be a finite number (got nan)"),
    ],
)
def test_messages_name_recipe_tables_not_schema_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    line = _validate_with_set(tmp_path, capsys, override)
    assert line == f"error: --set {override}: {expected}"
    assert "Section" not in line


def test_unreadable_recipe_is_one_io_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(VALID)
    real = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self == recipe:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    assert main(["validate", str(recipe)]) == 74
    assert _one_error_line(capsys) == f"error: {recipe}: cannot read the recipe (Permission denied)"


def test_a_folder_as_recipe_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptkit.errors import UserError
    from adaptkit.recipe import read_toml

    folder = tmp_path / "recipe.toml"
    folder.mkdir()
    with pytest.raises(UserError, match="is a folder, not a recipe file"):
        read_toml(folder)
    assert main(["validate", str(folder)]) == 2
    assert "not a recipe file" in _one_error_line(capsys)
