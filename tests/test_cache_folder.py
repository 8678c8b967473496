"""The persistent latent cache: its default folder, its size limit, eviction, clearing, reruns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cache_helpers import write_entry

from adaptkit.errors import UserError
from adaptkit.testing.datasets import write_naruto
from adaptkit.training.cache_folder import (
    CACHE_DIR_ENV,
    LIMIT_ENV,
    Usage,
    cache_limit,
    clear,
    default_latent_dir,
    entry_files,
    evict,
    format_size,
    usage,
    user_cache_dir,
)

from training_helpers import run, write_recipe


def test_the_user_cache_folder_follows_the_environment(tmp_path) -> None:
    home = Path.home()
    assert user_cache_dir({}) == home / ".cache" / "adaptkit"
    assert user_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "adaptkit"
    both = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), CACHE_DIR_ENV: str(tmp_path / "mine")}
    assert user_cache_dir(both) == tmp_path / "mine"
    assert user_cache_dir({CACHE_DIR_ENV: "", "XDG_CACHE_HOME": ""}) == home / ".cache" / "adaptkit"  # empty = unset
    assert user_cache_dir({CACHE_DIR_ENV: "~/elsewhere"}) == home / "elsewhere"
    assert default_latent_dir({CACHE_DIR_ENV: str(tmp_path)}) == tmp_path / "latents"


#: The environment as a test module sees it at import (a copy taken then goes to its subprocesses).
AT_IMPORT = os.environ.get(CACHE_DIR_ENV)


def test_the_test_session_never_writes_into_the_real_user_cache() -> None:
    folder = Path(os.environ[CACHE_DIR_ENV])
    assert AT_IMPORT == str(folder)  # set before collection, by adaptkit's pytest plugin
    assert folder.is_dir() and user_cache_dir() == folder
    assert Path.home() / ".cache" not in [folder, *folder.parents]


def test_the_size_limit_comes_from_the_environment() -> None:
    assert cache_limit({}) == 20_000_000_000
    assert cache_limit({LIMIT_ENV: "1.5"}) == 1_500_000_000
    for bad in ("lots", "0", "-3", "inf", "nan"):
        with pytest.raises(UserError) as caught:
            cache_limit({LIMIT_ENV: bad})
        assert caught.value.lines == [
            f"{LIMIT_ENV} = {bad!r}: not a size in gigabytes; use a positive number such as 20"
        ]


def test_eviction_removes_the_least_recently_used_entries_but_never_the_runs_own(tmp_path) -> None:
    oldest, old, used, newest = (write_entry(tmp_path, n, 100, mtime) for n, mtime in enumerate((10, 20, 5, 40)))
    stranger = tmp_path / "ab" / "notes.txt"  # not shaped like an entry: never touched
    stranger.parent.mkdir()
    stranger.write_text("mine")
    assert usage(tmp_path) == Usage(4, 400)

    done = evict(tmp_path, limit=250, keep={used})
    assert (done.removed, done.freed, done.left) == (2, 200, 200)
    assert not oldest.exists() and not old.exists() and used.exists() and newest.exists() and stranger.exists()
    assert evict(tmp_path, limit=250).removed == 0  # under the limit: nothing goes

    over = evict(tmp_path, limit=50, keep={used, newest})  # the run's own entries exceed the limit
    assert (over.removed, over.left) == (0, 200) and used.exists() and newest.exists()


def test_clear_deletes_only_entries_and_refuses_root_and_home(tmp_path) -> None:
    entries = [write_entry(tmp_path, n, 10, 1) for n in range(3)]
    torn = entries[0].with_name(entries[0].name + ".tmp123-ab12cd34")  # a write killed half-way
    torn.write_bytes(b"half")
    other = tmp_path / "keep.safetensors"
    other.write_bytes(b"not in a shard folder")
    assert sorted(entry_files(tmp_path)) == sorted(entries)  # a torn write is no entry
    assert clear(tmp_path) == Usage(4, 34)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [Path("keep.safetensors")]
    for unsafe in (Path("/"), Path.home(), Path("~")):
        with pytest.raises(UserError, match="refusing to clear the root or home folder"):
            clear(unsafe)


def test_sizes_are_written_in_decimal_units() -> None:
    assert [format_size(n) for n in (0, 999, 1500, 2_500_000, 20e9)] == ["0 B", "999 B", "1.5 kB", "2.5 MB", "20.0 GB"]


@pytest.fixture()
def user_cache(tmp_path, monkeypatch) -> Path:
    """This test's own user cache folder (runs leave data.cache_dir unset)."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "latents"


def cache_line(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith("cache: ") and "latents" in line]
    return line


def test_a_rerun_reuses_every_latent_and_a_new_resolution_or_vae_misses(
    tmp_path, tiny_model_dir, user_cache, capsys
) -> None:
    data = write_naruto(tmp_path / "naruto", rows=4).path
    upfront = {"random_flip": True, "cache_fill": "upfront"}
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", data=upfront, sample={"prompts": []})
    first, _ = run(recipe)
    assert (first.latent_cache.reused, first.latent_cache.encoded) == (0, 8)
    assert f"cache: 0 latents reused from {user_cache}, 8 encoded at " in cache_line(capsys.readouterr().out)
    assert usage(user_cache).entries == 8

    again, _ = run(recipe, overwrite=True)
    line = cache_line(capsys.readouterr().out)
    assert line.startswith(f"cache: 8 latents reused from {user_cache}, 0 encoded (4 images × 2 flip(s), ")
    assert (again.latent_cache.reused, again.latent_cache.encoded) == (8, 0)

    smaller = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="16px", data={**upfront, "resolution": 16})
    resized, _ = run(smaller)
    assert (resized.latent_cache.reused, resized.latent_cache.encoded) == (0, 8)
    assert {tuple(mean.shape[-2:]) for mean, _ in resized.latent_cache.entries.values()} == {(2, 2)}
    assert usage(user_cache).entries == 16

    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_model_dir / "vae")
    type(vae).from_config(vae.config).save_pretrained(tmp_path / "other-vae")  # the same VAE, other weights
    other = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="other-vae", data=upfront,
                         model={"vae": str(tmp_path / "other-vae")}, sample={"prompts": []})  # fmt: skip
    revae, _ = run(other)
    assert (revae.latent_cache.reused, revae.latent_cache.encoded) == (0, 8)
    assert usage(user_cache).entries == 24


def drawn(trainer) -> set[tuple[int, bool]]:
    """The (index, flip) pairs the run's batches drew."""
    examples = trainer.training_examples
    rows = [examples[p] for step in range(trainer.recipe.train.steps) for p in trainer.layout.positions(step)]
    return {(row["index"], bool(row["flipped"])) for row in rows}


def test_first_draw_starts_at_once_and_a_rerun_encodes_nothing(tmp_path, tiny_model_dir, user_cache, capsys) -> None:
    data = write_naruto(tmp_path / "naruto", rows=6).path
    keys = {"random_flip": True}
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", data=keys, train={"steps": 2}, sample={"prompts": []})
    first, _ = run(recipe)
    out = capsys.readouterr().out
    assert f"cache: latents read from {user_cache} or encoded into it as first drawn (6 images × 2 flip(s), " in out
    assert f"cached text: captions read from {user_cache} or encoded into it as first drawn" in out
    encoded = drawn(first)
    assert 0 < len(encoded) < 12  # two steps of two: only what they drew, nothing before the first step
    cache = first.latent_cache
    assert cache.first_draw.drawn == encoded and cache.first_draw.encoded == len(encoded)
    assert not cache.entries  # no posterior held in memory: read from disk as drawn
    described = {index for index, _ in encoded}
    assert first.training_data.infos.described == len(described) < 6  # no image decoded or hashed up front
    text = first.text_cache
    assert not text.hidden and 0 < text.encoded <= 4  # the captions two batches of two drew, on disk only
    assert f"cache: 0 latents reused from {user_cache} and {len(encoded)} encoded as first drawn at " in out
    assert usage(user_cache).entries == len(encoded) + text.encoded

    again, _ = run(recipe, overwrite=True)
    out = capsys.readouterr().out
    assert f"cache: {len(encoded)} latents reused from {user_cache} and 0 encoded as first drawn" in out  # same draws
    assert again.latent_cache.first_draw.encoded == 0
    assert (again.text_cache.encoded, again.text_cache.reused) == (0, text.encoded)  # the captions read back

    longer = write_recipe(tmp_path, tiny_model_dir, data, "lora", name="longer", data=keys, sample={"prompts": []},
                          train={"steps": 12})  # fmt: skip
    more, _ = run(longer)
    assert more.latent_cache.first_draw.encoded == len(drawn(more) - encoded)  # only what no run drew before
    assert more.latent_cache.first_draw.reused == len(encoded)


def test_first_draw_decodes_each_drawn_image_once(tmp_path, tiny_model_dir, user_cache, monkeypatch) -> None:
    from adaptkit.data.rows import RowsDataset

    decoded: list[int] = []
    real = RowsDataset._decode
    monkeypatch.setattr(RowsDataset, "_decode", lambda self, position: decoded.append(position) or real(self, position))
    data = write_naruto(tmp_path / "naruto", rows=6).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", data={"random_flip": True}, train={"steps": 3},
                          sample={"prompts": []})  # fmt: skip
    trainer, _ = run(recipe)
    drawn_indices = {index for index, _ in drawn(trainer)}
    # one epoch: every image described (for its key) and encoded, from one decode each
    assert trainer.latent_cache.first_draw.encoded == len(drawn_indices) == 6
    assert sorted(decoded) == list(range(6))


def test_first_draw_trains_as_an_upfront_fill_does(tmp_path, tiny_model_dir, user_cache) -> None:
    import json

    import torch

    data = write_naruto(tmp_path / "naruto", rows=6).path
    losses = {}
    for fill in ("upfront", "first-draw"):
        recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", name=fill, sample={"prompts": []},
                              data={"random_flip": True, "cache_fill": fill, "cache_dir": str(tmp_path / fill)},
                              train={"steps": 5, "batch_size": 3})  # fmt: skip
        trainer, _ = run(recipe)
        losses[fill] = [json.loads(line)["loss"] for line in trainer.run.dir.metrics.read_text().splitlines()]
        cache = trainer.latent_cache
        tasks = sorted(cache.first_draw.drawn) if cache.first_draw else sorted(cache.entries)
        losses[f"{fill}-posteriors"] = dict(zip(tasks, cache.posteriors(tasks)))
    # the same posteriors, up to the VAE's float noise across batch compositions
    for task, (mean, std) in losses["first-draw-posteriors"].items():
        torch.testing.assert_close(mean, losses["upfront-posteriors"][task][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(std, losses["upfront-posteriors"][task][1], rtol=1e-5, atol=1e-6)
    assert losses["first-draw"] == pytest.approx(losses["upfront"], rel=1e-5, abs=1e-6)


def test_an_empty_cache_dir_keeps_latents_in_memory(tmp_path, tiny_model_dir, user_cache, capsys) -> None:
    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", data={"cache_dir": ""}, sample={"prompts": []})
    trainer, _ = run(recipe)
    assert trainer.latent_cache.encoded == 2 and not user_cache.exists()
    line = cache_line(capsys.readouterr().out)
    assert line.startswith("cache: 2 latents encoded at ") and ", in memory only (2 images × 1 flip(s), " in line


def test_a_run_over_the_limit_evicts_older_entries(tmp_path, tiny_model_dir, user_cache, monkeypatch, capsys) -> None:
    stale = [write_entry(user_cache, 1000 + n, 50_000, 1) for n in range(3)]
    monkeypatch.setenv(LIMIT_ENV, "0.00006")  # 60 kB: room for one stale entry beside the run's two
    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(tmp_path, tiny_model_dir, data, "lora", data={"cache_text": False}, sample={"prompts": []})
    trainer, _ = run(recipe)
    out = capsys.readouterr().out
    assert sum(path.exists() for path in stale) == 1
    assert usage(user_cache).entries == 3 and usage(user_cache).size <= 60_000
    assert f"cache: 2 least recently used latents (100.0 kB) removed from {user_cache}" in out
    rerun, _ = run(recipe, overwrite=True)
    assert rerun.latent_cache.first_draw.encoded == 0  # the run's own entries survived the eviction


def test_a_run_killed_while_encoding_as_first_drawn_resumes_exactly(tmp_path, tiny_model_dir, monkeypatch) -> None:
    """Each posterior is written before its step goes on: the resumed run reads what the killed one
    encoded and encodes the rest in the same batches, so its weights equal an uninterrupted run's."""
    import torch

    from training_helpers import make_trainer

    data = write_naruto(tmp_path / "naruto", rows=8).path

    def recipe(name: str) -> Path:
        keys = {"random_flip": True, "cache_dir": str(tmp_path / f"{name}-cache")}  # each run its own cache
        sections = {"train": {"steps": 6, "batch_size": 2}, "checkpoint": {"every": 3}, "sample": {"prompts": []}}
        return write_recipe(tmp_path, tiny_model_dir, data, "lora", name=name, data=keys, **sections)

    straight, _ = run(recipe("straight"))
    interrupted = recipe("interrupted")
    trainer = make_trainer(interrupted)
    original_step = trainer._optimizer_step

    def step_then_die(step, batches):
        if step == 4:  # after the checkpoint at step 3: step 4's posteriors are on disk, its update is lost
            original_step(step, batches)
            raise KeyboardInterrupt
        return original_step(step, batches)

    monkeypatch.setattr(trainer, "_optimizer_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    trainer.cleanup()
    before = usage(tmp_path / "interrupted-cache").entries  # the latents and captions the killed run wrote
    resumed, result = run(interrupted, resume="latest")
    assert resumed.start_step == 3 and result.steps_this_session == 3
    assert resumed.latent_cache.first_draw.reused > 0 and before > 0  # steps 3 and 4 drawn again: read back
    written = {
        name: t.latent_cache.first_draw.encoded + t.text_cache.encoded for name, t in [("s", straight), ("r", resumed)]
    }
    assert before + written["r"] == written["s"]  # latents and captions: each encoded once over the two sessions
    a = straight.method.trainable_state_dict(straight.components)
    b = resumed.method.trainable_state_dict(resumed.components)
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
