"""Several datasets in one run (``[[data.sets]]`` with ``repeats``): one deterministic stream whose set
shares follow the repeats, each set with its own caption rules, bit-exact resume, the shares in
``adaptkit data preview``, and a bad set named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.testing.datasets import write_naruto, write_pokemon
from adaptkit.testing.family_runs import adapter_tensors, train

from training_helpers import make_trainer, write_recipe


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sets")
    return write_naruto(root / "naruto", rows=4).path, write_pokemon(root / "pokemon", rows=6).path


def sets_recipe(tmp_path: Path, model: Path, folders, name: str = "run", **data) -> Path:
    naruto, pokemon = folders
    extra = {"adapter": "pokemon", "options": {"source": str(pokemon)}, "repeats": 1, "caption_prefix": "setb"}
    data = {"repeats": 3, "sets": [extra], **data}
    return write_recipe(tmp_path, model, naruto, name=name, data=data, sample={"prompts": []})


def share_of_first_set(trainer, positions: range) -> tuple[int, int]:
    rows = [trainer.training_examples[p] for p in positions]
    second = sum(row["caption"].startswith("setb ") for row in rows)
    return len(rows) - second, second


def test_the_stream_follows_the_repeats_exactly_per_epoch(tmp_path: Path, tiny_model_dir: Path, folders) -> None:
    """4 examples x 3 + 6 x 1 = 18 places per epoch: 12 and 6 in every epoch; 1000 steps within 1%."""
    trainer = make_trainer(sets_recipe(tmp_path, tiny_model_dir, folders))
    try:
        assert share_of_first_set(trainer, range(0, 18 * 10)) == (120, 60)
        first, _ = share_of_first_set(trainer, range(1000))
        assert abs(first / 1000 - 12 / 18) < 0.01
        captions = {trainer.training_examples[p]["caption"] for p in range(18)}
        assert any(c.startswith("setb a cartoon pokemon") for c in captions)  # the set's own prefix
        assert any(c.startswith("a ninja") for c in captions)  # [data]'s captions untouched
        assert len(trainer.examples) == 10
    finally:
        trainer.cleanup()


def test_buckets_follow_the_repeats_too(tmp_path: Path, tiny_model_dir: Path, folders) -> None:
    trainer = make_trainer(sets_recipe(tmp_path, tiny_model_dir, folders, bucketing=True, bucket_step=8))
    try:
        first, _ = share_of_first_set(trainer, range(1800))
        assert abs(first / 1800 - 12 / 18) < 0.05
    finally:
        trainer.cleanup()


def test_resume_with_several_sets_is_bit_exact(tmp_path: Path, tiny_model_dir: Path, folders) -> None:
    straight = adapter_tensors(train(sets_recipe(tmp_path, tiny_model_dir, folders, name="straight")))
    stopped = sets_recipe(tmp_path, tiny_model_dir, folders, name="stopped")
    train(stopped, "train.steps=2", "checkpoint.every=2")
    resumed = adapter_tensors(train(stopped, "checkpoint.every=2", resume="latest"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_preview_prints_each_sets_share(tmp_path: Path, tiny_model_dir: Path, folders, capsys) -> None:
    recipe = sets_recipe(tmp_path, tiny_model_dir, folders)
    assert main(["data", "preview", str(recipe), "--out", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "set 0 (naruto): 4 examples x 3 repeats = 12 of 18 per epoch (67%)" in out
    assert "set 1 (pokemon): 6 examples x 1 repeats = 6 of 18 per epoch (33%)" in out


def test_a_bad_set_is_one_line_naming_it(tmp_path: Path, tiny_model_dir: Path, folders, capsys) -> None:
    naruto, _ = folders
    data = {"sets": [{"adapter": "nosuch"}]}
    recipe = write_recipe(tmp_path, tiny_model_dir, naruto, data=data, sample={"prompts": []})
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.sets.0.adapter: unknown dataset 'nosuch'" in err[0], err
