"""``adaptkit sample``: images from a base model plus any method's output (a run's result or one of its checkpoints)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from adaptkit.cli.common import console
from adaptkit.errors import UserError
from adaptkit.plugins import get_plugin_manager
from adaptkit.recipe import ModelSection, SampleSection
from adaptkit.recipe.overrides import parse_override
from adaptkit.resolve import build_component
from adaptkit.sampling.generate import GenerationSettings, generate_grid
from adaptkit.sampling.grids import save_grid

#: ``[sample]`` keys -> the options that set them here (the recipe's rules for them apply).
FLAGS = {
    "sampler": "--sampler",
    "steps": "--steps",
    "guidance": "--guidance",
    "resolution": "--resolution",
    "prompts": "--prompt",
    "negative_prompt": "--negative-prompt",
    "seeds": "--seed",
}
#: Image endings named in the ``--out`` message (PIL writes more).
COMMON_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate images from a base model, optionally with a run's adapter",
        description="Generate a grid of prompts x seeds. --adapter RUN_DIR applies that run's result "
        "(LoRA, LoHa, full fine-tune or a plugin method) with the method that produced it; "
        "--checkpoint step-N uses one of the run's checkpoints instead.",
    )
    parser.add_argument("--base", help="base model (Hub id, folder, .safetensors, embedded:NAME); default: the run's")
    parser.add_argument("--adapter", type=Path, metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument(
        "--checkpoint",
        metavar="step-N|latest|PATH",
        help="with --adapter: sample that checkpoint's weights (a name under RUN_DIR/checkpoints, latest, or a "
        "checkpoint folder) instead of the run's result",
    )
    parser.add_argument("--sampler", default="dpm-solver", help="sampler name (see adaptkit plugins)")
    parser.add_argument(
        "--sampler-option", action="append", default=[], metavar="KEY=VALUE", help="sampler option (repeatable)"
    )
    parser.add_argument("--prompt", action="append", required=True, help="prompt (repeatable)")
    parser.add_argument("--seed", type=int, action="append", help="seed (repeatable; default 0)")
    parser.add_argument("--steps", type=int, default=25, help="inference steps, 1-1000 (default 25)")
    parser.add_argument(
        "--guidance", type=float, default=7.5, help="classifier-free guidance scale, 0-50 (default 7.5)"
    )
    parser.add_argument("--resolution", type=int, help="image size in pixels, a multiple of 8 (default: the model's)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt")
    parser.add_argument("--out", type=Path, default=Path("samples.png"), help="output image (default samples.png)")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle weights (unsafe)")
    parser.set_defaults(handler=handle)


def sample_settings(args: argparse.Namespace) -> SampleSection:
    """The command line's numbers and prompts, checked by the recipe's own ``[sample]`` rules."""
    given = {
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance": args.guidance,
        "prompts": args.prompt,
        "negative_prompt": args.negative_prompt,
        "seeds": args.seed or [0],
    }
    if args.resolution is not None:
        given["resolution"] = args.resolution
    try:
        return SampleSection.model_validate(given)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = str(error["loc"][0])
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{FLAGS.get(key, key)} {error['input']}: {message}")
        raise UserError.collect(lines) from exc


def check_out(out: Path) -> None:
    """``--out`` must name an image file PIL can write (checked before any model loads)."""
    from PIL import Image

    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give an image file, e.g. {out / 'samples.png'}")
    Image.init()
    writable = {suffix for suffix, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
    if out.suffix.lower() not in writable:
        shown = ", ".join(s for s in COMMON_IMAGE_SUFFIXES if s in writable)
        raise UserError(f"--out {out}: not an image file name (want a name ending in {shown}, ...)")


def check_base(model: ModelSection, given: bool) -> None:
    """Check the base model's source before anything loads; a mistake in ``--base`` names that option."""
    from adaptkit.models import resolve_base

    try:
        resolve_base(model)
    except UserError as exc:
        if not given:
            raise
        raise UserError(*(f"--base {model.base}: {line}" for line in exc.lines)) from exc


def handle(args: argparse.Namespace) -> int:
    from adaptkit.run import RunDir, read_run_recipe
    from adaptkit.sampling.pipeline import cut_prompts, load_pipeline, sampling_pipeline
    from adaptkit.training.checkpoint_use import checkpoint_model, find_checkpoint, split_checkpoint_path

    if args.base is None and args.adapter is None:
        raise UserError("sample: give --base MODEL, --adapter RUN_DIR, or both")
    if args.checkpoint is not None and args.adapter is None:
        raise UserError(f"--checkpoint {args.checkpoint}: needs --adapter RUN_DIR (the run the checkpoint is of)")
    settings = sample_settings(args)
    check_out(args.out)
    options = dict(_option(text) for text in args.sampler_option)
    run_dir, checkpoint = split_checkpoint_path(args.adapter) if args.adapter else (None, None)
    if checkpoint is not None and args.checkpoint is not None:
        raise UserError(f"--adapter {args.adapter}: is a checkpoint folder; with --checkpoint give the run folder")
    run_recipe = read_run_recipe(run_dir) if run_dir else None
    if checkpoint is not None:
        checkpoint = find_checkpoint(checkpoint.parent, str(checkpoint), "--adapter")
    elif args.checkpoint is not None:
        checkpoint = find_checkpoint(RunDir(run_dir).checkpoints, args.checkpoint)
    model = run_recipe.model.model_copy() if run_recipe else ModelSection()
    if args.base:
        model = model.model_copy(update={"base": args.base})
    if args.allow_pickle:
        model = model.model_copy(update={"allow_pickle": True})
    check_base(model, given=args.base is not None)
    registries = get_plugin_manager(run_recipe.plugins.modules if run_recipe else ()).collect()
    errors: list[str] = []
    sampler = build_component(
        registries.samplers, settings.sampler, options, "sample", "--sampler", errors, "--sampler-option"
    )
    if sampler is None:
        raise UserError.collect(errors)
    if checkpoint is not None:
        pipeline = sampling_pipeline(checkpoint_model(checkpoint, run_recipe, registries, model).components, sampler)
    else:
        pipeline = load_pipeline(model, sampler, registries, run_dir)
    resolution = settings.resolution or (
        run_recipe.sample.resolution or run_recipe.data.resolution if run_recipe else None
    )
    if resolution is None:
        from adaptkit.interop.peft_files import denoiser_of

        resolution = denoiser_of(pipeline)[1].config.sample_size * pipeline.vae_scale_factor
    cut = cut_prompts(pipeline.tokenizer, settings.prompts)
    negative_cut = bool(settings.negative_prompt) and cut_prompts(pipeline.tokenizer, [settings.negative_prompt]) > 0
    if cut or negative_cut:
        what = f"{cut} of {len(settings.prompts)} prompts" + (" and the negative prompt" if negative_cut else "")
        console.print(f"note: {what} cut to the text encoder's {pipeline.tokenizer.model_max_length} tokens")
    generation = GenerationSettings(settings.steps, settings.guidance, resolution, settings.negative_prompt)
    rows = generate_grid(pipeline, settings.prompts, settings.seeds, generation)
    path = save_grid(rows, settings.prompts, args.out)
    source = f", {checkpoint.name}" if checkpoint is not None else ""
    grid = f"{len(settings.prompts)} prompts x {len(settings.seeds)} seeds"
    console.print(f"wrote {path} ({grid}, sampler {settings.sampler}{source})")
    return 0


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise UserError(f"--sampler-option {text}: expected KEY=VALUE, e.g. --sampler-option solver_order=2")
    try:
        path, value = parse_override(text)
    except UserError as exc:
        raise UserError(f"--sampler-option {text}: empty key (expected KEY=VALUE)") from exc
    return ".".join(path), value
