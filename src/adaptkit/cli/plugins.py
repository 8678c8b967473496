"""``adaptkit plugins``: every registered component, with its plugin."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from adaptkit.cli.common import console
from adaptkit.plugins import get_plugin_manager


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list registered datasets, methods, samplers and metrics",
        description="List every registered component with the plugin (and distribution) that registered it. "
        "ADAPTKIT_LOAD_PLUGINS=a,b limits which installed plugins load.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--module", action="append", default=[], metavar="MODULE", help="also load this plugin module (repeatable)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    manager = get_plugin_manager(args.module, source="--module")
    registries = manager.collect()
    rows = [
        {
            "kind": registry.kind,
            "name": name,
            "plugin": entry.plugin,
            "distribution": entry.distribution or "adaptkit",
            "description": entry.cls.description,
        }
        for kind, registry in registries.by_kind().items()
        for name, entry in registry
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="adaptkit components")
    for column in ("kind", "name"):  # never cut: a name is what a recipe must spell exactly
        table.add_column(column, no_wrap=True, min_width=max(len(column), *(len(r[column]) for r in rows)))
    for column, ratio in (("plugin", 2), ("distribution", 1), ("description", 4)):
        table.add_column(column, overflow="fold", ratio=ratio)
    for row in rows:
        table.add_row(*(row[c] for c in ("kind", "name", "plugin", "distribution", "description")))
    console.print(table)
    return 0
