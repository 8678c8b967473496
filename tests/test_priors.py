"""Prior preservation: a ``role = "prior"`` set whose folder holds fewer than ``prior_count`` images
gets exactly the missing ones from the base model (seeds recorded), a later run reuses them, its
examples train with their ``loss_weight``, and a bad prior set is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.testing.datasets import pattern_image, write_naruto
from adaptkit.training.batches import Batch, loss_mask

from training_helpers import run, write_recipe

CLASS_PROMPT = "a ninja"


def prior_recipe(tmp_path: Path, model: Path, priors: Path, name: str, count: int = 3, weight: float = 0.5) -> Path:
    data_dir = tmp_path / "naruto"
    if not data_dir.exists():
        write_naruto(data_dir, rows=4)
    prior = {
        "adapter": "imagefolder",
        "options": {"source": str(priors)},
        "role": "prior",
        "class_prompt": CLASS_PROMPT,
        "prior_count": count,
        "loss_weight": weight,
    }
    return write_recipe(
        tmp_path, model, data_dir, name=name, data={"sets": [prior]}, train={"steps": 2}, sample={"prompts": []}
    )


def test_the_missing_prior_images_are_generated_once_and_reused(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    priors = tmp_path / "priors"
    priors.mkdir()
    pattern_image(0).save(priors / "mine.png")
    (priors / "mine.txt").write_text("a ninja, mine\n")
    trainer, _ = run(prior_recipe(tmp_path, tiny_model_dir, priors, "first"))
    assert "prior images: generating 2 of 3" in capsys.readouterr().out
    made = sorted(p.name for p in priors.glob("prior-*.png"))
    assert made == ["prior-00000.png", "prior-00001.png"]
    seeds = [json.loads(line) for line in (priors / "prior_seeds.jsonl").read_text().splitlines()]
    assert [s["file_name"] for s in seeds] == made and all(s["prompt"] == CLASS_PROMPT for s in seeds)
    assert (priors / "prior-00000.txt").read_text() == CLASS_PROMPT + "\n"
    assert len(trainer.examples) == 4 + 3  # the style set and every prior image
    before = {p.name: p.read_bytes() for p in priors.iterdir()}
    run(prior_recipe(tmp_path, tiny_model_dir, priors, "second"))
    assert "generating" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in priors.iterdir()} == before  # reused, nothing new


def test_prior_images_are_the_bases_and_depend_only_on_their_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run(prior_recipe(tmp_path, tiny_model_dir, a, "a", count=2))
    run(prior_recipe(tmp_path, tiny_model_dir, b, "b", count=1))
    assert (a / "prior-00000.png").read_bytes() == (b / "prior-00000.png").read_bytes()


def test_a_sets_loss_weight_scales_its_examples_loss() -> None:
    latents = torch.zeros(2, 4, 2, 2)
    batch = Batch((), [], 0, [], [], [], [], torch.zeros(2, 6), weights=torch.tensor([1.0, 0.25]))
    mask = loss_mask(batch, latents)
    assert mask.shape == (2, 1, 2, 2) and torch.equal(mask[:, 0, 0, 0], torch.tensor([1.0, 0.25]))
    plain = Batch((), [], 0, [], [], [], [], torch.zeros(2, 6))
    assert loss_mask(plain, latents) is None


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"adapter": "imagefolder", "options": {"source": "x"}, "role": "prior"}, "needs class_prompt and prior_count"),
        (
            {"adapter": "naruto", "role": "prior", "class_prompt": "a", "prior_count": 2},
            "needs adapter = 'imagefolder' with options.source a local folder",
        ),
        ({"adapter": "naruto", "class_prompt": "a"}, "class_prompt and prior_count are for role = 'prior'"),
    ],
)
def test_a_bad_prior_set_is_one_line(tmp_path: Path, tiny_model_dir: Path, entry, message, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, tmp_path, data={"sets": [entry]})
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.sets.0" in err[0] and message in err[0], err


def test_the_report_shows_the_prior_images_beside_the_style_set(tmp_path: Path) -> None:
    from adaptkit.evaluation.sets_report import sets_html
    from adaptkit.recipe import Recipe

    priors = tmp_path / "priors"
    priors.mkdir()
    for i in range(8):
        pattern_image(i).save(priors / f"prior-{i:05d}.png")
    recipe = Recipe.model_validate(
        {
            "data": {
                "adapter": "naruto",
                "repeats": 2,
                "sets": [
                    {
                        "adapter": "imagefolder",
                        "options": {"source": str(priors)},
                        "role": "prior",
                        "class_prompt": CLASS_PROMPT,
                        "prior_count": 8,
                        "loss_weight": 0.5,
                    }
                ],
            },
            "method": {"name": "lora"},
        }
    )
    page = sets_html(recipe)
    assert "style: naruto" in page and "<i>images from naruto</i>" in page
    assert "prior: imagefolder — “a ninja”" in page and page.count("<img ") == 6  # the first six thumbnails
    assert "<td class=num>0.5</td>" in page
    assert sets_html(Recipe.model_validate({"data": {"adapter": "naruto"}, "method": {"name": "lora"}})) is None
