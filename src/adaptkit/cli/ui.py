"""``adaptkit ui``: a local web app to launch, watch and judge runs (needs the ``[ui]`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="a local web app: launch, watch, stop, resume, export and compare runs",
        description="Serve a web app over a runs folder: every run in it (started here or from the CLI) with "
        "its status, live loss and learning-rate curves and sample grids, its checkpoints and evaluation "
        "report; edit and launch recipes (one run at a time), stop (a clean checkpoint) and resume them. "
        "Binds 127.0.0.1; any other --host needs the token it prints. Needs: pip install 'adaptkit[ui]'.",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), metavar="DIR", help="the runs folder (default runs)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--concurrent", type=int, default=1, metavar="N", help="runs the queue trains at once (default 1)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.errors import UserError
    from adaptkit.ui.server import serve

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: give a port between 1 and 65535")
    if args.concurrent < 1:
        raise UserError(f"--concurrent {args.concurrent}: give at least 1")
    if args.runs.exists() and not args.runs.is_dir():
        raise UserError(f"--runs {args.runs}: not a folder")
    serve(args.runs, args.host, args.port, args.concurrent)
    return 0
