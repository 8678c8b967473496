"""The README's first two commands are exactly what CI runs, and every CLI help is complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adaptkit.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [blocks[0].strip(), blocks[1].strip()]


def test_readme_opens_with_install_and_demo_then_tests() -> None:
    install, tests = readme_commands()
    assert install.endswith("adaptkit run recipes/demo.toml") and 'pip install -e ".[dev]"' in install
    assert tests.startswith("pytest")


def test_ci_runs_the_readme_commands_verbatim() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in readme_commands():
        assert command in ci_lines, command


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: adaptkit {command}" in out
    assert "not yet available" not in out
    top = parser.format_help()
    assert command in top
