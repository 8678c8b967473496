"""``adaptkit import``: a kohya LoRA or LyCORIS LoHa file as a run folder, for sampling and more training."""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptkit.cli.common import console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="bring a kohya LoRA / LyCORIS LoHa .safetensors in as a run folder (sample, export, train on)",
        description="Load FILE (a kohya LoRA or a LyCORIS LoHa, as A1111/ComfyUI use) onto --base and write "
        "OUT/adapter (adaptkit's native format) and OUT/recipe.toml, so that `adaptkit sample --adapter OUT` and "
        "`adaptkit export OUT` work. To train it further, set [method.options] init_from = FILE (with the rank, "
        "alpha and target_modules printed here) in a recipe.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a kohya LoRA or LyCORIS LoHa .safetensors file")
    parser.add_argument("--base", required=True, help="the base model it was trained on (Hub id, folder, file)")
    parser.add_argument("--config", help="for a single-file --base: the diffusers folder giving its architecture")
    parser.add_argument("--out", type=Path, required=True, help="the run folder to write (new or empty)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.interop.importer import import_file, method_options
    from adaptkit.recipe import ModelSection
    from adaptkit.recipe.dump import dump_toml

    model = ModelSection(base=args.base, config=args.config)
    out, imported = import_file(args.file, model, args.out)
    modules = sum(len(part.modules) for part in imported.parts.values())
    console.print(
        f"imported a {imported.method} (rank {imported.rank}, alpha {imported.alpha:g}, {modules} modules) into {out}"
    )
    console.print(f"sample it:  adaptkit sample --adapter {out} --prompt '...'")
    options = {**method_options(imported), "init_from": str(args.file.resolve())}
    recipe = dump_toml({"method": {"name": imported.method, "options": options}})
    console.print("train on from it, in a recipe:\n" + recipe, markup=False)
    return 0
