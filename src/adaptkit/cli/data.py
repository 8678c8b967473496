"""Placeholder wiring for `adaptkit data` (filled in by its own module)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("data", help="(not yet available)")
