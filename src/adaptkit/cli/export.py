"""``adaptkit export``: a run's result (or one of its checkpoints) in the format another tool loads."""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptkit.cli.common import console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from adaptkit.interop.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="write a run's result for another tool (diffusers, peft, kohya/A1111/ComfyUI, single-file)",
        description="Write RUN_DIR's result in another format: diffusers or peft (folders), kohya (a LoRA in the "
        "kohya layout or a LoHa in the LyCORIS layout, for A1111/Forge/ComfyUI), single-file (a full fine-tune "
        "as one original-layout Stable Diffusion checkpoint). Files carry the base model, method, rank, alpha, "
        "recipe hash and training steps in their safetensors header. --checkpoint step-N exports one of the "
        "run's checkpoints instead of its result.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument(
        "--checkpoint",
        metavar="step-N|latest|PATH",
        help="export that checkpoint's weights (a name under RUN_DIR/checkpoints, latest, or a checkpoint folder) "
        "instead of the run's result",
    )
    parser.add_argument(
        "--out", type=Path, help="output path (default: RUN_DIR/exports/NAME[-step-N]-FORMAT[.safetensors])"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file (or write into a non-empty folder)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.interop.export import export_run

    path = export_run(args.run_dir, args.format, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    console.print(f"wrote {path}")
    return 0
