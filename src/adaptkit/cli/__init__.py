"""The ``adaptkit`` command line. Each subcommand lives in its own module with
``add_parser(subparsers)`` and a handler; this module only wires them and turns
:class:`~adaptkit.errors.UserError` into one line per problem and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from adaptkit import __version__
from adaptkit.cli.quiet import quiet_third_party
from adaptkit.errors import IOFailure, UserError

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "run",
    "recipes",
    "validate",
    "plugins",
    "data",
    "cache",
    "caption",
    "sample",
    "export",
    "import",
    "eval",
    "compare",
    "sweep",
    "bench",
    "ui",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adaptkit",
        description="Adapt Stable Diffusion to a visual style (full fine-tune, LoRA, LoHa or a plugin's method).",
        epilog="Start with: adaptkit run demo (adaptkit recipes lists the shipped recipes)",
    )
    parser.add_argument("--version", action="version", version=f"adaptkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"adaptkit.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_third_party()
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        if not exc.printed:
            exc.print()
        return exc.exit_code
    except OSError as exc:  # the last net: an unreadable file, a read-only folder, a full disk
        error = IOFailure.from_os_error(exc, f"complete `adaptkit {args.command}`")
        error.print()
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
