"""``adaptkit data preview RECIPE`` (first rows and a contact sheet), ``adaptkit data export`` (the
dataset as an imagefolder) and ``adaptkit data dedupe`` (near-duplicate images)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from adaptkit.cli.common import add_recipe_arguments, console
from adaptkit.component import DatasetAdapter
from adaptkit.recipe import Recipe, load_recipe
from adaptkit.recipe.overrides import RecipeSource

CAPTION_WIDTH = 80


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``adaptkit data`` and its ``preview`` subcommand."""
    parser = subparsers.add_parser(
        "data",
        help="inspect a recipe's dataset",
        description="Inspect the dataset a recipe trains on.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    preview = commands.add_parser(
        "preview",
        help="show the first rows and write a contact sheet of them as training sees them",
        description="Load the recipe's dataset, list the first rows (captions, original size and mode) "
        "and write a PNG contact sheet of those images after resizing, cropping and flipping.",
    )
    add_recipe_arguments(preview)
    preview.add_argument("--rows", type=_positive, default=8, metavar="N", help="how many rows to show (default 8)")
    preview.add_argument(
        "--out", type=Path, default=None, metavar="PATH", help="PNG to write (default: <recipe stem>-data-preview.png)"
    )
    preview.add_argument("--thumb", type=_positive, default=128, metavar="PX", help="cell size in pixels (default 128)")
    preview.set_defaults(handler=handle_preview)
    export = commands.add_parser(
        "export",
        help="write the recipe's dataset as an imagefolder (PNG + metadata.jsonl) or as tar shards",
        description="Write the recipe's dataset (e.g. an embedded style set) as a Hugging Face imagefolder "
        "that the imagefolder adapter and datasets.load_dataset read, or (--format tar) as WebDataset tar "
        "shards that the shards adapter reads lazily.",
    )
    add_recipe_arguments(export)
    export.add_argument("out", type=Path, metavar="OUT_DIR", help="a new folder to create")
    export.add_argument("--limit", type=_positive, default=None, metavar="N", help="at most N examples")
    export.add_argument(
        "--format", choices=("imagefolder", "tar"), default="imagefolder", help="imagefolder (default) or tar shards"
    )
    export.add_argument(
        "--per-shard", type=_positive, default=1000, metavar="N", help="tar: examples per shard (default 1000)"
    )
    export.set_defaults(handler=handle_export)
    dedupe = commands.add_parser(
        "dedupe",
        help="find near-duplicate images (perceptual hash) and list the ones to leave out",
        description="Hash every image of the recipe's dataset (pHash), group near-duplicates and print the "
        "groups; --exclude-file writes the keys to drop (all but the first of each group) for "
        "[data] exclude_keys.",
    )
    add_recipe_arguments(dedupe)
    dedupe.add_argument(
        "--distance", type=int, default=4, metavar="BITS", help="largest Hamming distance of a pair (default 4 of 64)"
    )
    dedupe.add_argument("--exclude-file", type=Path, default=None, metavar="PATH", help="write the keys to drop here")
    dedupe.set_defaults(handler=handle_dedupe)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def resolve_dataset(
    recipe: Recipe, path: Path, overrides: Sequence[str] = (), data_set: int | None = None
) -> DatasetAdapter:
    """Only the recipe's dataset adapter (``[[data.sets]]`` entry ``data_set``'s when given; plugins loaded
    as for a run); methods and samplers are not built."""
    from adaptkit.data.loading import build_adapter

    entry = recipe.data if data_set is None else recipe.data.sets[data_set]
    return build_adapter(
        entry.adapter,
        entry.options,
        modules=recipe.plugins.modules,
        base_dir=path.parent,
        source=RecipeSource(path, overrides),
    )


def _shorten(text: str, width: int = CAPTION_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def handle_preview(args: argparse.Namespace) -> int:
    """Load the dataset, print the first rows as a table, write the contact sheet and say where."""
    from adaptkit.data.pipeline import ImagePipeline
    from adaptkit.data.preview import preview
    from adaptkit.data.run_examples import load_training_sets

    path = Path(args.recipe)
    recipe = load_recipe(path, args.overrides)
    from adaptkit.training.priors import pending_prior_sets

    extra = [resolve_dataset(recipe, path, args.overrides, i) for i in range(len(recipe.data.sets))]
    pending = pending_prior_sets(recipe)  # prior images the run will generate first
    sets = load_training_sets(resolve_dataset(recipe, path, args.overrides), recipe.data, extra, pending)
    dataset = sets.examples  # as the run sees it
    pipeline = ImagePipeline.from_data_section(recipe.data)
    result = preview(dataset, pipeline, rows=args.rows, seed=recipe.train.seed, thumb=args.thumb)

    table = Table(title=f"{recipe.data.adapter}: first {len(result.examples)} of {len(dataset)} examples")
    for column in ("#", "key", "caption", "size", "mode"):
        table.add_column(column, overflow="fold" if column == "caption" else "ellipsis")
    for index, example in enumerate(result.examples):
        width, height = example.meta.get("original_size", example.image.size)
        more = f" (+{len(example.captions) - 1} more)" if len(example.captions) > 1 else ""
        table.add_row(
            str(index),
            example.key,
            _shorten(example.captions[0]) + more,
            f"{width}×{height}",
            str(example.meta.get("original_mode", example.image.mode)),
        )
    console.print(table)

    out = args.out or Path(f"{path.stem}-data-preview.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    result.sheet.save(out, format="PNG")
    skipped = f", {dataset.skipped} rows skipped" if dataset.skipped else ""
    if len(sets.shares) > 1 or sets.repeats is not None:
        for line in sets.share_lines():
            console.print(line, markup=False)
    console.print(
        f"{len(dataset)} examples{skipped}; contact sheet of {len(result.examples)} at "
        f"{pipeline.resolution} px ({result.sheet.width}×{result.sheet.height}) written to {out}",
        soft_wrap=True,
    )
    return 0


def handle_export(args: argparse.Namespace) -> int:
    """Export the recipe's dataset to ``OUT_DIR`` and say how to train on it."""
    from adaptkit.data.export import export_imagefolder, export_tar_shards

    path = Path(args.recipe)
    recipe = load_recipe(path, args.overrides)
    dataset = resolve_dataset(recipe, path, args.overrides).load()
    if args.format == "tar":
        count = export_tar_shards(dataset, args.out, args.per_shard, args.limit)
        what, adapter = f"{count} images as tar shards of {args.per_shard}", "shards"
    else:
        count = export_imagefolder(dataset, args.out, args.limit)
        what, adapter = f"{count} images and metadata.jsonl", "imagefolder"
    console.print(
        f"wrote {what} to {args.out}; train on it with "
        f'[data] adapter = "{adapter}", [data.options] source = "{args.out}"',
        soft_wrap=True,
        markup=False,
    )
    return 0


def handle_dedupe(args: argparse.Namespace) -> int:
    """Print the near-duplicate groups; write the keys to drop when asked."""
    from adaptkit.data.dedupe import near_duplicate_groups, perceptual_hashes, write_exclude_file
    from adaptkit.errors import UserError

    if not 0 <= args.distance <= 64:
        raise UserError(f"--distance {args.distance}: a Hamming distance between 64-bit hashes (valid: 0..64)")
    path = Path(args.recipe)
    recipe = load_recipe(path, args.overrides)
    dataset = resolve_dataset(recipe, path, args.overrides).load()
    keys, bits = perceptual_hashes(dataset)
    groups = near_duplicate_groups(keys, bits, args.distance)
    for number, group in enumerate(groups, 1):
        console.print(f"group {number}: keep {group.keys[0]}; drop {', '.join(group.dropped)}", markup=False)
    dropped = sum(len(group.dropped) for group in groups)
    console.print(f"{len(keys)} images, {len(groups)} near-duplicate groups, {dropped} to drop", markup=False)
    if args.exclude_file is not None:
        write_exclude_file(args.exclude_file, groups)
        console.print(
            f'wrote {dropped} keys to {args.exclude_file}; use [data] exclude_keys = "{args.exclude_file}"',
            markup=False,
            soft_wrap=True,
        )
    return 0
