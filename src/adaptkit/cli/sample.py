"""``adaptkit sample``: images from a base model plus any method's output."""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptkit.cli.common import console
from adaptkit.errors import UserError
from adaptkit.plugins import get_plugin_manager
from adaptkit.recipe import ModelSection
from adaptkit.recipe.overrides import parse_override
from adaptkit.resolve import build_component
from adaptkit.sampling.generate import GenerationSettings, generate_grid
from adaptkit.sampling.grids import save_grid


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate images from a base model, optionally with a run's adapter",
        description="Generate a grid of prompts x seeds. --adapter RUN_DIR applies that run's result "
        "(LoRA, LoHa, full fine-tune or a plugin method) with the method that produced it.",
    )
    parser.add_argument("--base", help="base model (Hub id, folder, .safetensors, embedded:NAME); default: the run's")
    parser.add_argument("--adapter", type=Path, metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument("--sampler", default="dpm-solver", help="sampler name (see adaptkit plugins)")
    parser.add_argument(
        "--sampler-option", action="append", default=[], metavar="KEY=VALUE", help="sampler option (repeatable)"
    )
    parser.add_argument("--prompt", action="append", required=True, help="prompt (repeatable)")
    parser.add_argument("--seed", type=int, action="append", help="seed (repeatable; default 0)")
    parser.add_argument("--steps", type=int, default=25, help="inference steps (default 25)")
    parser.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--resolution", type=int, help="image size in pixels (default: the model's)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt")
    parser.add_argument("--out", type=Path, default=Path("samples.png"), help="output PNG (default samples.png)")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle weights (unsafe)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from adaptkit.run import read_run_recipe
    from adaptkit.sampling.pipeline import load_pipeline

    if args.base is None and args.adapter is None:
        raise UserError("sample: give --base MODEL, --adapter RUN_DIR, or both")
    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: must be at least 1")
    if args.resolution is not None and (args.resolution < 8 or args.resolution % 8):
        raise UserError(f"--resolution {args.resolution}: must be a positive multiple of 8")
    run_recipe = read_run_recipe(args.adapter) if args.adapter else None
    model = run_recipe.model.model_copy() if run_recipe else ModelSection()
    if args.base:
        model = model.model_copy(update={"base": args.base})
    if args.allow_pickle:
        model = model.model_copy(update={"allow_pickle": True})
    registries = get_plugin_manager(run_recipe.plugins.modules if run_recipe else ()).collect()
    options = dict(_option(text) for text in args.sampler_option)
    errors: list[str] = []
    sampler = build_component(registries.samplers, args.sampler, options, "sample", "--sampler", errors)
    if sampler is None:
        raise UserError.collect(errors)
    pipeline = load_pipeline(model, sampler, registries, args.adapter)
    resolution = args.resolution or (run_recipe.sample.resolution or run_recipe.data.resolution if run_recipe else None)
    if resolution is None:
        resolution = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    seeds = args.seed or [0]
    settings = GenerationSettings(args.steps, args.guidance, resolution, args.negative_prompt)
    path = save_grid(generate_grid(pipeline, args.prompt, seeds, settings), args.prompt, args.out)
    console.print(f"wrote {path} ({len(args.prompt)} prompts x {len(seeds)} seeds, sampler {args.sampler})")
    return 0


def _option(text: str) -> tuple[str, object]:
    path, value = parse_override(text)
    return ".".join(path), value
