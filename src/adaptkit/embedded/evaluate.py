"""Prompt-following and style measurements of a pipeline, judged by the probes (used by the
``embedded_probes`` metric and by pretraining; the command line is :mod:`adaptkit.embedded.pretraining.evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffusers import DiffusionPipeline
from PIL import Image

from adaptkit.embedded.probes import Probes
from adaptkit.embedded.world import EVAL_SEED_OFFSET, SIZES, Split, caption_for, combos
from adaptkit.sampling.generate import GenerationSettings, generate_images

#: Sampler settings of evaluation and the demo.
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 5.0


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
    pipe: DiffusionPipeline,
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
    pipe: DiffusionPipeline,
    probes: Probes,
    specs: Sequence[PromptSpec],
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
) -> dict[str, float]:
    """Generate for ``specs`` and score them with the probes."""
    images = generate(pipe, [s.prompt for s in specs], [s.seed for s in specs], steps, guidance)
    return score(probes, images, specs)
