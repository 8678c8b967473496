"""Which launcher started a run, and the resume hint that repeats its command."""

from __future__ import annotations

from adaptkit.training.launcher import current_launch


def test_alone_the_hint_is_adaptkit_run_with_resume() -> None:
    launch = current_launch({}, None)
    assert launch.describe() == "adaptkit run: 1 process on 1 node"
    alone = ["adaptkit", "run", "my recipe.toml", "--set", "train.steps=10", "--overwrite"]
    assert launch.resume_command(alone) == "adaptkit run 'my recipe.toml' --set train.steps=10 --resume"


def test_under_torchrun_the_hint_repeats_the_launcher_command() -> None:
    parent = (
        "torchrun",
        "--nnodes",
        "2",
        "--nproc_per_node",
        "4",
        "-m",
        "adaptkit.cli",
        "run",
        "r.toml",
        "--resume",
        "ckpt/step-000010",
    )
    launch = current_launch({"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "0"}, parent)
    assert launch.describe() == "torchrun: 8 processes on 2 nodes"
    assert launch.resume_command(["adaptkit", "run", "r.toml"]) == (
        "torchrun --nnodes 2 --nproc_per_node 4 -m adaptkit.cli run r.toml --resume"
    )


def test_accelerate_launch_with_a_config_file() -> None:
    parent = (
        "accelerate",
        "launch",
        "--config_file",
        "fsdp.yaml",
        "-m",
        "adaptkit.cli",
        "run",
        "r.toml",
        "--overwrite",
    )
    launch = current_launch({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1"}, parent)
    assert launch.launcher == "accelerate launch" and launch.nodes == 1
    assert launch.resume_command([]) == "accelerate launch --config_file fsdp.yaml -m adaptkit.cli run r.toml --resume"


def test_python_dash_m_torch_distributed_run_and_an_unknown_launcher() -> None:
    env = {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    parent = (
        "python3.11",
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "adaptkit.cli",
        "run",
        "r.toml",
    )
    assert current_launch(env, parent).launcher == "torchrun"
    unknown = current_launch(env, ("my-scheduler", "go"))
    assert unknown.launcher == "a launcher"  # its command line is not the user's: the hint is adaptkit run's
    assert unknown.resume_command(["adaptkit", "run", "r.toml"]) == "adaptkit run r.toml --resume"
