"""Cached latents and text: same training as uncached, refused where wrong, reused from disk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from adaptkit.cli import main
from adaptkit.data.pipeline import ImagePipeline, choose_caption
from adaptkit.errors import UserError
from adaptkit.recipe import DataSection
from adaptkit.testing.datasets import write_naruto
from adaptkit.training.batches import TrainingExamples
from adaptkit.training.cache import LatentJob, cache_settings, fill_latent_cache
from adaptkit.training.cache_folder import default_latent_dir
from adaptkit.training.example_infos import ExampleInfo, describe_examples
from adaptkit.training.fingerprints import module_identity
from adaptkit.training.latent_store import DiskStore
from adaptkit.training.text_cache import captions_to_cache

from training_helpers import run, write_recipe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_naruto(tmp_path_factory.mktemp("naruto") / "naruto", rows=6).path


@pytest.fixture(scope="module")
def tiny_vae(tiny_model_dir: Path):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny_model_dir / "vae").eval()


def quiet(_line: str) -> None:
    pass


def run_losses(tmp_path: Path, model: Path, data: Path, name: str, **data_keys) -> tuple[list[float], dict, object]:
    recipe = write_recipe(
        tmp_path,
        model,
        data,
        "lora",
        name=name,
        data={"random_flip": True, **data_keys},
        train={"steps": 5, "batch_size": 3, "caption_dropout": 0.3, "log_every": 1},
        sample={"prompts": []},
    )
    trainer, _ = run(recipe)
    metrics = [json.loads(line) for line in trainer.run.dir.metrics.read_text().splitlines()]
    weights = {k: v.clone() for k, v in trainer.method.trainable_state_dict(trainer.components).items()}
    return [row["loss"] for row in metrics], weights, trainer


def test_cached_training_matches_uncached(tmp_path, tiny_model_dir, data_dir) -> None:
    plain, plain_weights, uncached = run_losses(
        tmp_path, tiny_model_dir, data_dir, "plain", cache_latents=False, cache_text=False
    )
    cached, cached_weights, trainer = run_losses(  # in memory, filled before the first step
        tmp_path, tiny_model_dir, data_dir, "cached", cache_latents=True, cache_text=True, cache_dir=""
    )
    assert uncached.latent_cache is None and uncached.text_cache is None
    assert len(trainer.latent_cache) == 6 * 2  # both flips of every image
    assert set(trainer.text_cache.hidden) == {f"a ninja with spiky hair, frame {i}" for i in range(6)} | {""}
    assert len(plain) == len(cached) == 5
    # The VAE encodes a cached image in another batch than the loop would: latents differ in the
    # last float bit (losses by ~1e-7), which Adam's normalised update lets grow to ~2e-5 in the
    # weights after 5 steps of lr 1e-3 (each weight moved up to 5e-3). Text caching is bit-exact.
    assert cached == pytest.approx(plain, rel=1e-5, abs=1e-6)
    assert plain_weights.keys() == cached_weights.keys()
    for key, value in plain_weights.items():
        torch.testing.assert_close(cached_weights[key], value, rtol=1e-3, atol=5e-5)
    assert any(not torch.equal(v, 0 * v) for v in cached_weights.values())


def test_cached_posterior_samples_the_same_latents_as_the_vae(tiny_vae, data_dir) -> None:
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples)
    pipeline = ImagePipeline(32, random_flip=True)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False, True), pipeline, "no")
    cache = fill_latent_cache(
        job, tiny_vae, device=torch.device("cpu"), autocast=torch.no_grad, batch_size=4, log=quiet
    )
    indices, flips = [2, 0, 5], [True, False, False]
    pixels = torch.stack([pipeline(examples[i].image, flip=f).pixel_values for i, f in zip(indices, flips)])
    with torch.no_grad():
        expected = tiny_vae.encode(pixels).latent_dist.sample(generator=torch.Generator().manual_seed(7))
    got = cache.sample(indices, flips, torch.Generator().manual_seed(7), "cpu")
    torch.testing.assert_close(got, expected * tiny_vae.config.scaling_factor, rtol=1e-5, atol=1e-6)
    other = cache.sample(indices, flips, torch.Generator().manual_seed(8), "cpu")
    assert not torch.allclose(got, other)  # a fresh draw per step, not a frozen sample


def test_disk_cache_is_reused_and_keyed_by_vae(tmp_path, tiny_vae, data_dir) -> None:
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples, digests=True)
    assert len({info.digest for info in infos}) == len(infos)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False,), ImagePipeline(32), "no")
    store = DiskStore(tmp_path / "cache")
    lines: list[str] = []
    kwargs = dict(device=torch.device("cpu"), autocast=torch.no_grad, batch_size=4, store=store, log=lines.append)
    first = fill_latent_cache(job, tiny_vae, **kwargs)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == len(infos)
    second = fill_latent_cache(job, tiny_vae, **kwargs)
    assert f"cache: 0 latents reused from {tmp_path / 'cache'}, {len(infos)} encoded at " in lines[0]
    assert f"cache: {len(infos)} latents reused from {tmp_path / 'cache'}, 0 encoded (" in lines[1]
    assert (first.reused, first.encoded, second.reused, second.encoded) == (0, len(infos), len(infos), 0)
    for key, (mean, std) in first.entries.items():
        assert torch.equal(second.entries[key][0], mean) and torch.equal(second.entries[key][1], std)

    identity = module_identity(tiny_vae)
    changed = type(tiny_vae).from_config(tiny_vae.config).eval()  # same config, other weights
    assert module_identity(changed) != identity
    elsewhere = type(tiny_vae).from_config({**tiny_vae.config, "_name_or_path": "/another/clone/vae"}).eval()
    elsewhere.load_state_dict(tiny_vae.state_dict())
    assert module_identity(elsewhere) == identity  # the same weights loaded from another folder: the same key
    fill_latent_cache(job, changed, **kwargs)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 2 * len(infos)


def test_cached_rows_make_the_same_choices_without_decoding(data_dir) -> None:
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples)
    pipeline = ImagePipeline(32, random_flip=True)
    decoded = TrainingExamples(examples, pipeline, choose_caption, seed=4, caption_dropout=0.5)

    class NoImages:  # any decode would fail
        def __len__(self) -> int:
            return len(examples)

        def __getitem__(self, index: int):
            raise AssertionError("decoded an image")

    cached = TrainingExamples(
        NoImages(), pipeline, choose_caption, seed=4, caption_dropout=0.5, infos=infos, pixels=False
    )
    rows = [(decoded[p], cached[p]) for p in range(30)]
    for full, light in rows:
        assert "pixel_values" not in light
        assert (full["index"], full["flipped"], full["caption"]) == (light["index"], light["flipped"], light["caption"])
    assert {full["flipped"] for full, _ in rows} == {True, False}
    assert "" in {full["caption"] for full, _ in rows}


def test_every_caption_and_the_empty_one_are_cached() -> None:
    infos = [ExampleInfo("a", ["one", "two"], (8, 8)), ExampleInfo("b", ["three"], (8, 8))]
    assert captions_to_cache(infos, 0.0) == ["one", "two", "three"]
    assert captions_to_cache(infos, 0.1) == ["one", "two", "three", ""]
    assert choose_caption(infos[0].captions, random.Random(0)) in {"one", "two"}


def test_auto_turns_caching_on_only_where_correct() -> None:
    auto = cache_settings(DataSection(adapter="x"), trains_text_encoder=False, method="lora")
    assert (auto.latents, auto.text, auto.directory) == (True, True, default_latent_dir())  # unset: on disk
    memory = cache_settings(DataSection(adapter="x", cache_dir=""), trains_text_encoder=False, method="lora")
    assert (memory.latents, memory.directory, memory.limit) == (True, None, None)
    random_crop = cache_settings(DataSection(adapter="x", center_crop=False), trains_text_encoder=True, method="full")
    assert (random_crop.latents, random_crop.text) == (False, False)
    off = cache_settings(DataSection(adapter="x", cache_latents=False, cache_text=False, cache_dir="c"), False, "lora")
    assert (off.latents, off.text, off.directory) == (False, False, Path("c"))


@pytest.mark.parametrize(
    ("data", "method", "message"),
    [
        ({"center_crop": False, "cache_latents": True}, {}, "data.cache_latents = true: data.center_crop = false"),
        ({"cache_text": True}, {"text_encoder": True}, "data.cache_text = true: method 'lora' trains the text encoder"),
    ],
)
def test_caching_where_it_is_wrong_is_refused(
    tmp_path, tiny_model_dir, data_dir, capsys, data, method, message
) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", data=data, method={"options": method})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "run").exists()  # refused before anything was written


def test_text_encoder_training_still_trains_uncached(tmp_path, tiny_model_dir, data_dir) -> None:
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, "lora", method={"options": {"text_encoder": True}}, sample={"prompts": []}
    )
    trainer, result = run(recipe)
    assert trainer.text_cache is None and trainer.latent_cache is not None
    assert result.steps == 4


def test_a_user_error_for_bad_cache_values(tmp_path, tiny_model_dir, data_dir, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_model_dir, data_dir, "lora", data={"cache_latents": "sometimes"})
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert "data.cache_latents" in capsys.readouterr().err


def test_store_paths_are_sharded_by_key_prefix(tmp_path) -> None:
    store = DiskStore(tmp_path)
    store.put("abcdef", torch.ones(2), None)
    assert (tmp_path / "ab" / "abcdef.safetensors").is_file()
    mean, std = store.get("abcdef")
    assert torch.equal(mean, torch.ones(2)) and std is None
    assert store.get("missing") is None
    with pytest.raises(UserError):
        cache_settings(DataSection(adapter="x", center_crop=False, cache_latents=True), False, "lora")


def test_each_process_writes_its_share_of_the_disk_cache(tmp_path, tiny_vae, data_dir) -> None:
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples, digests=True)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False, True), ImagePipeline(32, random_flip=True), "no")
    written_before_wait = []

    def wait() -> None:  # the barrier: here every other process would have written its share
        written_before_wait.append(len(list((tmp_path / "cache").rglob("*.safetensors"))))

    cache = fill_latent_cache(
        job,
        tiny_vae,
        device=torch.device("cpu"),
        autocast=torch.no_grad,
        batch_size=4,
        store=DiskStore(tmp_path / "cache"),
        shard=(1, 3),
        wait=wait,
        log=quiet,
    )
    assert written_before_wait == [len(infos) * 2 // 3]  # process 1 of 3 wrote every third posterior
    assert len(cache) == len(infos) * 2  # and encoded what the others did not provide


def test_processes_share_the_in_memory_encoding(tiny_vae, data_dir, monkeypatch) -> None:
    """Without a cache_dir each of N processes encodes 1/N of the posteriors and gathers the rest."""
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False, True), ImagePipeline(32, random_flip=True), "no")
    kwargs = dict(device=torch.device("cpu"), autocast=torch.no_grad, batch_size=4, log=quiet)
    shares: dict[int, list] = {}

    def gather_for(rank: int):
        def gather(share: list) -> list:  # all_gather: every process receives every share
            shares[rank] = share
            return [entry for r in sorted(shares) for entry in shares[r]]

        return gather

    fill_latent_cache(job, tiny_vae, shard=(1, 2), gather=gather_for(1), **kwargs)  # sees only its own share
    encoded = count_encoded_images(tiny_vae, monkeypatch)
    gathered = fill_latent_cache(job, tiny_vae, shard=(0, 2), gather=gather_for(0), **kwargs)
    assert encoded[0] == len(infos)  # its half of 2 × len(infos); process 1's half is not encoded again
    monkeypatch.undo()
    alone = fill_latent_cache(job, tiny_vae, **kwargs)
    assert [len(shares[0]), len(shares[1])] == [len(infos), len(infos)]  # half of 2 × len(infos) each
    assert {task for task, _, _ in shares[0]}.isdisjoint({task for task, _, _ in shares[1]})
    assert gathered.entries.keys() == alone.entries.keys()
    for task, (mean, std) in alone.entries.items():
        torch.testing.assert_close(gathered.entries[task][0], mean)
        torch.testing.assert_close(gathered.entries[task][1], std)


def count_encoded_images(vae, monkeypatch) -> list[int]:
    """Patch ``vae.encode`` to count the images it encodes; the one-element list holds the count."""
    encoded = [0]
    original = vae.encode

    def counting_encode(pixels, *args, **kwargs):
        encoded[0] += len(pixels)
        return original(pixels, *args, **kwargs)

    monkeypatch.setattr(vae, "encode", counting_encode)
    return encoded


def test_a_process_that_fails_to_encode_its_share_fails_the_others_too(tiny_vae, data_dir, monkeypatch) -> None:
    """The failing process still joins the gather, so the others raise its message instead of hanging."""
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False,), ImagePipeline(32), "no")
    kwargs = dict(device=torch.device("cpu"), autocast=torch.no_grad, batch_size=4, log=quiet)
    gathered: list = []

    def gather(share: list) -> list:
        gathered.extend(share)
        return list(gathered)

    def out_of_memory(pixels, *args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(tiny_vae, "encode", out_of_memory)
        with pytest.raises(RuntimeError, match="CUDA out of memory"):  # its own exception
            fill_latent_cache(job, tiny_vae, shard=(1, 2), gather=gather, **kwargs)
    with pytest.raises(RuntimeError, match=r"failed in another process \(process 1: RuntimeError: CUDA out of memory"):
        fill_latent_cache(job, tiny_vae, shard=(0, 2), gather=gather, **kwargs)


def test_a_corrupt_disk_entry_is_recomputed_overwritten_and_counted(tmp_path, tiny_vae, data_dir) -> None:
    """A truncated or garbage cache file is treated as missing, not a crash (SafetensorError)."""
    from adaptkit.data.loading import build_adapter

    examples = build_adapter("naruto", {"source": str(data_dir)}).load("train")
    infos = describe_examples(examples, digests=True)
    job = LatentJob(examples, infos, [(32, 32)] * len(infos), (False,), ImagePipeline(32), "no")
    store = DiskStore(tmp_path / "cache")
    lines: list[str] = []
    kwargs = dict(device=torch.device("cpu"), autocast=torch.no_grad, batch_size=4, store=store, log=lines.append)
    first = fill_latent_cache(job, tiny_vae, **kwargs)
    assert first.corrupt == 0 and not any("latent cache:" in line for line in lines)
    # clones: entries read from disk may share the files' memory, which the corruption below rewrites
    expected = {key: (mean.clone(), std.clone()) for key, (mean, std) in first.entries.items()}
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    truncated, garbage = files[0], files[1]
    truncated.write_bytes(truncated.read_bytes()[:40])  # "invalid header length"
    garbage.write_bytes(b"\x00not a safetensors file at all")

    lines.clear()
    second = fill_latent_cache(job, tiny_vae, **kwargs)
    assert second.corrupt == 2
    assert f"latent cache: 2 corrupt entries in {tmp_path / 'cache'} recomputed and overwritten" in lines
    assert f"{len(infos) - 2} latents reused from" in lines[-1] and ", 2 encoded at " in lines[-1]
    for key, (mean, std) in expected.items():
        torch.testing.assert_close(second.entries[key][0], mean)
        torch.testing.assert_close(second.entries[key][1], std)
    lines.clear()
    third = fill_latent_cache(job, tiny_vae, **kwargs)  # overwritten: every entry reads back now
    assert third.corrupt == 0 and f"{len(infos)} latents reused from" in lines[-1]


def test_a_full_disk_while_writing_the_cache_is_one_line_and_leaves_no_file(tmp_path, monkeypatch) -> None:
    import errno

    import safetensors.torch

    from adaptkit.training.latent_store import CacheWriteError

    def full_disk(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a file")  # what a write cut short leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    store = DiskStore(tmp_path / "cache")
    with pytest.raises(CacheWriteError) as caught:
        store.put("abcdef", torch.ones(2), None)
    assert caught.value.exit_code == 74 and isinstance(caught.value, UserError)
    (line,) = caught.value.lines
    assert str(store.path("abcdef")) in line and "No space left on device" in line and "data.cache_dir" in line
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert store.get("abcdef") is None


def test_a_full_disk_while_caching_ends_the_run_with_status_74(tmp_path, tiny_model_dir, data_dir, monkeypatch, capsys):
    import errno

    import safetensors.torch

    def full_disk(tensors, filename, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data_dir, "lora", data={"cache_dir": str(tmp_path / "cache")}, sample={"prompts": []}
    )
    assert main(["run", str(recipe), "--no-progress"]) == 74
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "latent cache entry" in line and str(tmp_path / "cache") in line and "No space left on device" in line


def test_the_pixel_digest_tells_images_apart_by_every_pixel_and_the_size() -> None:
    from PIL import Image

    from adaptkit.training.example_infos import pixel_digest

    image = Image.new("RGB", (64, 48), (10, 20, 30))
    same = Image.new("RGB", (64, 48), (10, 20, 30))
    one_pixel = same.copy()
    one_pixel.putpixel((63, 47), (10, 20, 31))
    transposed = Image.new("RGB", (48, 64), (10, 20, 30))  # the same bytes, another shape
    assert pixel_digest(image) == pixel_digest(same) and len(pixel_digest(image)) == 32
    assert len({pixel_digest(image), pixel_digest(one_pixel), pixel_digest(transposed)}) == 3
