"""``adaptkit cache info`` (where the latent cache is, what it holds, its limit) and ``adaptkit cache
clear`` (delete its entries, after a confirmation or with ``--yes``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adaptkit.errors import UserError
from adaptkit.training.cache_folder import (
    CACHE_DIR_ENV,
    LIMIT_ENV,
    cache_limit,
    clear,
    default_latent_dir,
    format_size,
    refuse_unsafe,
    usage,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``adaptkit cache`` with its ``info`` and ``clear`` subcommands."""
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the latent and caption cache that makes reruns start at once",
        description="Runs that leave [data] cache_dir unset cache their VAE latents (and, filled as first "
        "drawn, their captions' text-encoder outputs) in the user cache folder "
        f"(${CACHE_DIR_ENV}, else $XDG_CACHE_HOME/adaptkit, else ~/.cache/adaptkit), kept under "
        f"${LIMIT_ENV} gigabytes. --dir names another latent folder (a recipe's data.cache_dir).",
    )
    commands = parser.add_subparsers(dest="cache_command", metavar="COMMAND")
    info = commands.add_parser(
        "info", help="print the folder, its entry count, total size and limit", description="Describe the cache."
    )
    clearing = commands.add_parser(
        "clear",
        help="delete every cached latent and caption (nothing else in the folder)",
        description="Delete the cache's entries; other files in the folder are left alone. Asks first unless --yes.",
    )
    for command in (info, clearing):
        command.add_argument(
            "--dir", type=Path, default=None, metavar="DIR", help="a latent folder (default: the user cache's)"
        )
    clearing.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    info.set_defaults(handler=handle_info)
    clearing.set_defaults(handler=handle_clear)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def latent_folder(args: argparse.Namespace) -> Path:
    """``--dir`` (which must be a folder if it exists) or the user cache folder's latents."""
    if args.dir is None:
        return default_latent_dir()
    folder = args.dir.expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--dir {args.dir}: not a folder; give the latent cache folder (a recipe's data.cache_dir)")
    return folder


def handle_info(args: argparse.Namespace) -> int:
    folder = latent_folder(args)
    limit = cache_limit()
    held = usage(folder)
    state = "" if folder.is_dir() else " (not created yet)"
    print(f"folder:  {folder}{state}")
    print(f"entries: {held.entries}")
    print(f"size:    {format_size(held.size)} ({held.size} bytes)")
    print(f"limit:   {format_size(limit)} (${LIMIT_ENV}; least recently used entries go first)")
    return 0


def handle_clear(args: argparse.Namespace) -> int:
    folder = latent_folder(args)
    refuse_unsafe(folder)
    held = usage(folder)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"adaptkit cache clear: {folder} holds {held.entries} entries; pass --yes to delete them")
        answer = input(f"delete {held.entries} cache entries ({format_size(held.size)}) in {folder}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("nothing deleted")
            return 1
    gone = clear(folder)
    print(f"deleted {gone.entries} cache entries (latents and captions, {format_size(gone.size)}) from {folder}")
    return 0
