"""Placeholder wiring for `adaptkit sample` (filled in by its own module)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("sample", help="(not yet available)")
