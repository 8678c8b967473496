"""Prompt-following and style measurements of a pipeline, judged by the probes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffusers import StableDiffusionPipeline
from PIL import Image

from adaptkit.embedded.probes import Probes
from adaptkit.embedded.world import EVAL_SEED_OFFSET, SIZES, Split, caption_for, combos
from adaptkit.evaluation.generate import GenerationSettings, generate_images

#: Sampler settings of evaluation and the demo.
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 5.0
#: Held-out ground-truth images :func:`round_trip_ceiling` probes by default.
ROUND_TRIP_IMAGES = 600


@dataclass(frozen=True)
class PromptSpec:
    """A prompt with the ground truth it asks for and the seed to sample it with."""

    prompt: str
    shape: str
    colour: str
    background: str
    size: str
    seed: int


def eval_prompts(split: Split = "eval", per_prompt: int = 4, seed: int = 0) -> list[PromptSpec]:
    """Every ``(shape, colour, background, size)`` prompt of ``split``, ``per_prompt`` seeds each.

    Seeds start at ``EVAL_SEED_OFFSET + seed`` so they never coincide with training seeds.
    """
    specs = []
    k = 0
    for s, c, b in combos(split):
        for sz in SIZES:
            for _ in range(per_prompt):
                specs.append(PromptSpec(caption_for(s, c, b, sz), s, c, b, sz, EVAL_SEED_OFFSET + seed + k))
                k += 1
    return specs


def generate(
    pipe: StableDiffusionPipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    batch_size: int = 64,
) -> list[Image.Image]:
    """Sample one image per (prompt, seed) through the one generation loop; deterministic per seed."""
    return generate_images(pipe, prompts, seeds, GenerationSettings(steps, guidance, batch_size=batch_size))


def score(probes: Probes, images: Sequence[Image.Image], specs: Sequence[PromptSpec]) -> dict[str, float]:
    """Fractions of images whose probed shape / colour / both / background match the prompt.

    Also reports ``style_<name>``: the fraction of images the style probe puts in each class.
    """
    pred = probes.predict(list(images))
    n = max(1, len(specs))
    shape_ok = [p == s.shape for p, s in zip(pred["shape"], specs)]
    colour_ok = [p == s.colour for p, s in zip(pred["colour"], specs)]
    out = {
        "shape": sum(shape_ok) / n,
        "colour": sum(colour_ok) / n,
        "both": sum(a and b for a, b in zip(shape_ok, colour_ok)) / n,
        "background": sum(p == s.background for p, s in zip(pred["background"], specs)) / n,
        "size": sum(p == s.size for p, s in zip(pred["size"], specs)) / n,
    }
    for name in probes.labels["style"]:
        out[f"style_{name}"] = sum(p == name for p in pred["style"]) / n
    return out


def prompt_following(
    pipe: StableDiffusionPipeline,
    probes: Probes,
    specs: Sequence[PromptSpec],
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
) -> dict[str, float]:
    """Generate for ``specs`` and score them with the probes."""
    images = generate(pipe, [s.prompt for s in specs], [s.seed for s in specs], steps, guidance)
    return score(probes, images, specs)


def round_trip_ceiling(
    vae, probes: Probes, style: str, n: int = ROUND_TRIP_IMAGES, seed: int = 777_000
) -> dict[str, float]:
    """Per-head probe accuracy on held-out ground-truth images of ``style`` after a VAE round trip.

    A model that drew ``style`` perfectly would still be scored through its VAE's decoder, so
    these fractions bound what any adapted model can score (``style`` is the fraction read as
    ``style``). The shipped VAE keeps the ink style's colours for the probe in 97 % of images
    (the 600-step VAE of sessions 1-4 turned its yellow wash into orange: 84 %).
    """
    from adaptkit.embedded.data import Batch, make_batch
    from adaptkit.embedded.probes import accuracy
    from adaptkit.embedded.training import reconstruct

    truth = make_batch(n, EVAL_SEED_OFFSET + seed, "eval", (style,))
    return accuracy(probes.net, Batch(reconstruct(vae, truth.images), truth.labels, truth.captions))


def main() -> None:
    """``python -m adaptkit.embedded.evaluate [MODEL_DIR]``: held-out prompt following as JSON."""
    import argparse
    import json
    from pathlib import Path

    from adaptkit.embedded.models import load_pipeline, with_sampler
    from adaptkit.embedded.styles import STYLE_CLASSES

    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model", nargs="?", type=Path, default=here / "tiny-sd")
    parser.add_argument("--probes", type=Path, default=here / "probes")
    parser.add_argument("--per-prompt", type=int, default=4, help="seeds per held-out prompt (24 prompts)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument(
        "--round-trip",
        metavar="STYLE",
        choices=STYLE_CLASSES,
        help="instead: probe held-out ground-truth images of STYLE after the model's VAE round trip "
        "(the ceiling of what an adapted model can score)",
    )
    args = parser.parse_args()
    if args.round_trip:
        ceiling = round_trip_ceiling(load_pipeline(args.model).vae, Probes.load(args.probes), args.round_trip)
        print(json.dumps({"round_trip": args.round_trip, "images": ROUND_TRIP_IMAGES, **ceiling}))
        return
    pipe = with_sampler(load_pipeline(args.model))
    pipe.set_progress_bar_config(disable=True)
    specs = eval_prompts("eval", per_prompt=args.per_prompt)
    result = prompt_following(pipe, Probes.load(args.probes), specs, DEFAULT_STEPS, args.guidance)
    print(json.dumps({"images": len(specs), "guidance": args.guidance, **result}))


if __name__ == "__main__":
    main()
