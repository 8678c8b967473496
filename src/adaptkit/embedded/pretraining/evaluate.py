"""``python -m adaptkit.embedded.pretraining.evaluate``: how well a pretrained embedded model follows
held-out prompts, and the VAE round-trip ceiling of what any adapted model can score."""

from __future__ import annotations

from adaptkit.embedded.evaluate import DEFAULT_GUIDANCE, DEFAULT_STEPS, eval_prompts, prompt_following
from adaptkit.embedded.probes import Probes
from adaptkit.embedded.world import EVAL_SEED_OFFSET

#: Held-out ground-truth images :func:`round_trip_ceiling` probes by default.
ROUND_TRIP_IMAGES = 600


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
    from adaptkit.embedded.pretraining.training import reconstruct
    from adaptkit.embedded.probes import accuracy

    truth = make_batch(n, EVAL_SEED_OFFSET + seed, "eval", (style,))
    return accuracy(probes.net, Batch(reconstruct(vae, truth.images), truth.labels, truth.captions))


def main() -> None:
    """``python -m adaptkit.embedded.pretraining.evaluate [MODEL_DIR]``: held-out prompt following as JSON."""
    import argparse
    import json
    from pathlib import Path

    from adaptkit.embedded.pretraining.models import load_pipeline, with_sampler
    from adaptkit.embedded.styles import STYLE_CLASSES

    here = Path(__file__).resolve().parent.parent
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
