"""Placeholder wiring for `adaptkit run` (filled in by its own module)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("run", help="(not yet available)")
