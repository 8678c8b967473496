"""``adaptkit caption FOLDER``: write a ``.txt`` caption beside every image of a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptkit.cli.common import console
from adaptkit.cli.data import _positive


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``adaptkit caption``."""
    from adaptkit.data.captioning import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "caption",
        help="caption a folder of images with an image-to-text model (.txt sidecars)",
        description="Caption every image of FOLDER that has no .txt sidecar yet with a transformers "
        "image-to-text model, and write the sidecars the imagefolder adapter reads.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="a folder of images")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="ID_OR_PATH", help=f"Hub id or local folder (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--overwrite", action="store_true", help="caption images that already have a sidecar too")
    parser.add_argument("--prefix", default="", metavar="TEXT", help="put this before every caption (a trigger word)")
    parser.add_argument("--batch-size", type=_positive, default=8, metavar="N", help="images per batch (default 8)")
    parser.add_argument("--max-new-tokens", type=_positive, default=40, metavar="N", help="caption length limit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Caption the folder; say how many were written and skipped."""
    from rich.progress import Progress

    from adaptkit.data.captioning import Captioner, caption_folder, folder_images, sidecar

    images = folder_images(args.folder)
    todo = sum(1 for p in images if args.overwrite or not sidecar(p).exists())
    captioner = Captioner.load(args.model, args.max_new_tokens) if todo else None
    with Progress(console=console, disable=args.no_progress or not todo) as progress:
        task = progress.add_task("captioning", total=todo)
        count = (
            caption_folder(
                args.folder,
                captioner,
                overwrite=args.overwrite,
                batch_size=args.batch_size,
                prefix=args.prefix,
                advance=lambda n: progress.advance(task, n),
            )
            if captioner is not None
            else None
        )
    written, skipped = (count.written, count.skipped) if count else (0, len(images))
    unreadable = f"; unreadable: {', '.join(count.unreadable)}" if count and count.unreadable else ""
    console.print(
        f"{args.folder}: captioned {written}, skipped {skipped} that already had a caption{unreadable}",
        markup=False,
        soft_wrap=True,
    )
    return 0
