"""``embedded-styles``: the procedural style sets of the embedded world, generated on the fly.

Captions describe content only ("a large red star on a black background"), like the BLIP
captions of the reference datasets; the style is in the pixels alone. ``split = "eval"``
draws from the held-out (shape, colour, background) triples and evaluation seeds, so a
style set for evaluation never overlaps the training set.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adaptkit.component import DatasetAdapter, Example, Options, StyleDataset

StyleName = Literal["ink", "pop", "poster", "plain"]
#: The prompt set only this dataset defines (``[eval] prompt_sets = ["embedded"]``).
EMBEDDED_PROMPT_SET = "embedded"


class EmbeddedStylesOptions(Options):
    """Options of the ``embedded-styles`` adapter."""

    style: StyleName = Field(
        "ink", description="Which style: ink (New Yorker), pop (Pokémon/Simpsons), poster, or plain."
    )
    count: int = Field(64, ge=1, le=1_000_000, description="Number of images in the set.")
    image_size: int = Field(64, ge=16, le=1024, description="Side of the rendered images in pixels.")
    seed: int = Field(0, ge=0, description="First scene seed; scenes are seed, seed+1, ...")


class GeneratedStyleSet(StyleDataset):
    """``count`` scenes rendered in one style; each image is rendered when it is read."""

    def __init__(self, options: EmbeddedStylesOptions, split: str) -> None:
        from adaptkit.embedded.world import EVAL_SEED_OFFSET

        self.name = f"embedded-styles/{options.style}/{split}"
        self.options = options
        self.split = "eval" if split in ("eval", "test", "validation") else "train"
        self.first_seed = options.seed + (EVAL_SEED_OFFSET if self.split == "eval" else 0)

    def __len__(self) -> int:
        return self.options.count

    def __getitem__(self, index: int) -> Example:
        from adaptkit.embedded.styles import render_styled
        from adaptkit.embedded.world import scene_caption, scene_for_seed

        if not 0 <= index < len(self):
            raise IndexError(index)
        seed = self.first_seed + index
        scene = scene_for_seed(seed, self.split)
        image = render_styled(scene, self.options.image_size, self.options.style)
        return Example(
            image=image,
            captions=[scene_caption(scene)],
            key=f"{self.options.style}-{seed}",
            meta={
                "shape": scene.shape,
                "colour": scene.colour,
                "background": scene.background,
                "style": self.options.style,
            },
        )


class EmbeddedStylesAdapter(DatasetAdapter):
    """Procedural style sets over the embedded base world (offline, unlimited, exact ground truth)."""

    name = "embedded-styles"
    description = "Procedural style sets of the embedded world (ink, pop, poster); offline."
    Options = EmbeddedStylesOptions

    options: EmbeddedStylesOptions
    #: Held-out embedded-world prompts with held-out seeds, judged by the probes.
    default_prompt_sets: ClassVar[tuple[str, ...]] = (EMBEDDED_PROMPT_SET,)

    def load(self, split: str = "train") -> StyleDataset:
        """The style set of ``split`` ("train", or "eval" for held-out scenes)."""
        return GeneratedStyleSet(self.options, split)

    def evaluation_pairs(self, prompt_set: str, prompts: int, seeds_per_prompt: int) -> list[tuple[str, int]] | None:
        """``embedded``: ``prompts × seeds_per_prompt`` held-out prompts and seeds, spread over every combination."""
        if prompt_set != EMBEDDED_PROMPT_SET:
            return None
        from adaptkit.embedded.evaluate import eval_prompts

        count = prompts * seeds_per_prompt
        specs = eval_prompts("eval", per_prompt=seeds_per_prompt)
        specs = specs[:: max(1, len(specs) // count)][:count]
        return [(s.prompt, s.seed) for s in specs]

    def target_style(self) -> str:
        """The style the set is drawn in (the probes' style label)."""
        return self.options.style
