"""Two processes on the CPU (torchrun + gloo): data sharded, weights in sync, one writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adaptkit.testing.datasets import write_naruto

from training_helpers import write_recipe

PROBE = """
import json
from pathlib import Path

import adaptkit

LOG = Path(__file__).with_suffix(".log")


@adaptkit.hookimpl
def on_step_end(run, step, logs):
    state = run.trainer_state()
    with LOG.open("a") as handle:
        handle.write(json.dumps({
            "rank": run.accelerator.process_index,
            "processes": run.accelerator.num_processes,
            "distributed": str(run.accelerator.distributed_type),
            "step": step,
            "checksum": float(sum(t.double().sum() for t in state.values())),
        }) + "\\n")
"""


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    launch = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port())]
    return _launch(folder, launch, args, env)


def _launch(
    folder: Path, launcher: list[str], args: tuple[str, ...], env: dict[str, str] | None
) -> subprocess.CompletedProcess:
    command = [*launcher, "-m", "adaptkit.cli", *args]
    try:
        return subprocess.run(
            command,
            cwd=folder,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired as stuck:  # say where it stopped, not only that it did
        said = "".join(
            part.decode() if isinstance(part, bytes) else part or "" for part in (stuck.stdout, stuck.stderr)
        )
        pytest.fail(f"{launcher[0]} {' '.join(args)} did not finish in 300 s; its output:\n{said[-4000:]}")


def _adapter_tensors(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted((run_dir / "adapter").rglob("*.safetensors"))
    assert files, run_dir
    return {f"{path.name}:{key}": value for path in files for key, value in load_file(str(path)).items()}


@needs_torchrun
def test_two_processes_stay_in_sync_and_only_the_main_one_writes(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    data = write_naruto(tmp_path / "naruto", rows=8).path
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data,
        "lora",
        train={"steps": 4, "log_every": 2},
        checkpoint={"every": 2},
        sample={"prompts": []},
        plugins={"modules": ["probe.py"]},
    )
    done = _torchrun(tmp_path, "run", str(recipe), "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (tmp_path / "probe.log").read_text().splitlines()]
    assert {r["rank"] for r in rows} == {0, 1} and all(r["processes"] == 2 for r in rows)
    assert all("MULTI_CPU" in r["distributed"] for r in rows)
    for step in (2, 4):
        sums = {r["rank"]: r["checksum"] for r in rows if r["step"] == step}
        assert sums[0] == sums[1]  # DDP keeps the replicas identical
    run_dir = tmp_path / "runs" / "run"
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]  # written once, by the main process
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert done.stdout.count("run run") == 1  # one summary


def _straight_and_resumed(
    tmp_path: Path,
    tiny_model_dir: Path,
    method: str,
    accumulation: int,
    straight,
    env: dict[str, str],
    shards: bool = False,
    **sections,
) -> None:
    """Train one recipe twice on two processes: straight through with ``straight(folder, recipe)``, and
    with both processes SIGKILLed after step 3 (the checkpoint is step 2) then resumed with torchrun
    (``env`` set for both); the two results are bit-identical. The data: a naruto-schema parquet, or
    (``shards``) the same images as tar shards of 3, read block by block."""
    import torch

    data: Path | None = write_naruto(tmp_path / "naruto", rows=8).path
    if shards:
        from adaptkit.data.export import export_tar_shards
        from adaptkit.data.loading import build_adapter

        export_tar_shards(build_adapter("naruto", {"source": str(data)}).load(), tmp_path / "shards", per_shard=3)
        sections["data"] = {"adapter": "shards", "options": {"source": str(tmp_path / "shards")}}
        data = None
    results = {}
    for name in ("straight", "resumed"):
        folder = tmp_path / name
        folder.mkdir()
        train = {"steps": 4, "log_every": 2, "gradient_accumulation": accumulation}
        recipe = write_recipe(folder, tiny_model_dir, data, method, train=train, checkpoint={"every": 2}, **sections)
        if name == "straight":
            straight(folder, recipe)
        else:
            fault = {**env, "ADAPTKIT_FAULT": "kill:step-end:3"}
            killed = _torchrun(folder, "run", str(recipe), "--no-progress", env=fault)
            assert killed.returncode != 0 and not (folder / "runs" / "run" / "result.json").exists()
            second = _torchrun(folder, "run", str(recipe), "--resume", "--no-progress", env=env)
            assert second.returncode == 0, second.stdout + second.stderr
            assert second.stdout.count("resuming from") == 1  # said once, by the main process
            assert "(step 2)" in second.stdout  # trained on from the checkpoint, not from scratch
        results[name] = _adapter_tensors(folder / "runs" / "run")
    assert results["straight"].keys() == results["resumed"].keys()
    for key, value in results["straight"].items():
        assert torch.equal(value, results["resumed"][key]), key


@needs_torchrun
@pytest.mark.parametrize(("accumulation", "shards"), [(1, False), (2, True)], ids=["parquet", "shards-accumulate-2"])
def test_two_processes_killed_after_a_checkpoint_resume_to_the_weights_of_an_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, accumulation: int, shards: bool
) -> None:
    """Both processes are SIGKILLed after step 3 (the checkpoint is step 2); the resumed run, with
    gradient accumulation through ``accelerator.accumulate``, ends bit-identical to a straight one;
    the same from tar shards, each process opening them itself."""

    def straight(folder: Path, recipe: Path) -> None:
        done = _torchrun(folder, "run", str(recipe), "--no-progress")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "or encoded into it as first drawn" in done.stdout  # each process fills what it draws
        assert "cached text: captions read from " in done.stdout and "or encoded into it as first drawn" in done.stdout

    _straight_and_resumed(tmp_path, tiny_model_dir, "lora", accumulation, straight, {}, shards, sample={"prompts": []})


DATA = Path(__file__).parent / "data"
#: FSDP2 and DeepSpeed launches on two processes: the accelerate config users launch with, and what
#: ``accelerate launch`` with it sets for every process (the same launch with torchrun).
SHARDED_LAUNCHES = {
    "fsdp": (
        DATA / "fsdp_cpu.yaml",
        {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT"},
    ),
    "zero2": (DATA / "zero2_cpu.yaml", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}),
    "zero3": (DATA / "zero3_cpu.yaml", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}),
}
#: What each launch's checkpoint holds for process ``{rank}`` besides its RNG state, and its manifest record.
SHARD_FILES = {
    "fsdp": ("accelerate/pytorch_model_fsdp_0/__{rank}_0.distcp", "accelerate/optimizer_0/__{rank}_0.distcp"),
    "zero2": ("accelerate/pytorch_model/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt",),
    "zero3": (
        "accelerate/pytorch_model/zero_pp_rank_{rank}_mp_rank_00_model_states.pt",
        "accelerate/pytorch_model/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt",
    ),
}
SHARDING_RECORDS = {
    "fsdp": {"backend": "FSDP", "processes": 2},
    "zero2": {"backend": "DEEPSPEED", "processes": 2, "zero_stage": 2},
    "zero3": {"backend": "DEEPSPEED", "processes": 2, "zero_stage": 3},
}


@needs_torchrun
@pytest.mark.parametrize(
    ("launch", "method", "accumulation"),
    [("fsdp", "lora", 1), ("fsdp", "full", 1), ("zero2", "lora", 2), ("zero3", "full", 2)],
)
def test_sharded_two_processes_killed_after_a_sharded_checkpoint_resume_to_the_weights_of_an_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, launch: str, method: str, accumulation: int
) -> None:
    """FSDP2 or DeepSpeed ZeRO over two gloo processes: both SIGKILLed after step 3 (the sharded
    checkpoint is step 2); the resumed run's result (EMA weights, sharded or gathered in training,
    whole in the checkpoint) equals a straight run's bit for bit, and every process's shards are in
    the manifest. DeepSpeed runs accumulate two micro-batches through ``accelerator.accumulate``."""
    from adaptkit.training.checkpoint import read_manifest

    config_file, env = SHARDED_LAUNCHES[launch]

    def straight(folder: Path, recipe: Path) -> None:  # launched as users do, with the accelerate config
        accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
        config = ["--config_file", str(config_file), "--main_process_port", str(_free_port())]
        done = _launch(folder, [accelerate, "launch", *config], ("run", str(recipe), "--no-progress"), None)
        assert done.returncode == 0, done.stdout + done.stderr
        backend = SHARDING_RECORDS[launch]["backend"]
        assert f"launch: accelerate launch: 2 processes on 1 node ({backend}, gloo)" in done.stdout
        if launch == "fsdp":
            assert "fsdp: sharding the denoiser by CrossAttnDownBlock2D" in done.stdout

    _straight_and_resumed(
        tmp_path, tiny_model_dir, method, accumulation, straight, env, ema={"enabled": True, "decay": 0.9}
    )
    for name in ("straight", "resumed"):  # sampled by both processes, saved once
        assert (tmp_path / name / "runs" / "run" / "samples" / "step-000004.png").is_file()

    checkpoint = tmp_path / "resumed" / "runs" / "run" / "checkpoints" / "step-000004"
    manifest = read_manifest(checkpoint)
    assert manifest["sharded"] == SHARDING_RECORDS[launch]
    files = set(manifest["files"])
    for rank in (0, 1):
        for shard in (*SHARD_FILES[launch], "accelerate/random_states_{rank}.pkl"):
            assert shard.format(rank=rank) in files
    assert {"trainable.safetensors", "training_state.pt"} <= files


def test_a_sharded_checkpoint_with_a_shard_missing_or_changed_is_refused_naming_it(tmp_path: Path) -> None:
    from adaptkit.errors import UserError
    from adaptkit.training import checkpoint as ckpt

    tmp = ckpt.temporary_folder(tmp_path, 2, "sharded")
    ckpt.start_temporary(tmp_path, tmp)
    for rank in (0, 1):
        shard = tmp / "accelerate" / "optimizer_0" / f"__{rank}_0.distcp"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(bytes([rank]) * 64)
    ckpt.write_main_files(tmp, 2, {}, {"rng": None})
    final = tmp_path / ckpt.checkpoint_name(2)
    ckpt.seal(tmp_path, tmp, final, 2, {"sharded": {"backend": "FSDP", "processes": 2}})
    assert ckpt.checkpoint_problem(final) is None

    shard = final / "accelerate" / "optimizer_0" / "__1_0.distcp"
    shard.write_bytes(b"\x07" * 64)
    with pytest.raises(UserError, match=r"accelerate/optimizer_0/__1_0\.distcp does not match its SHA-256") as bad:
        ckpt.load_checkpoint(final)
    assert len(bad.value.lines) == 1
    shard.unlink()
    with pytest.raises(UserError, match=r"accelerate/optimizer_0/__1_0\.distcp is missing"):
        ckpt.load_checkpoint(final)
