"""The pretraining script that made the shipped embedded model: its defaults are the shipped
settings, and every stage runs end to end (at toy scale) and writes a loadable model and probes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.embedded.evaluate import generate
from adaptkit.embedded.pretraining import pretrain
from adaptkit.embedded.pretraining.models import load_pipeline, with_sampler
from adaptkit.embedded.probes import Probes

SHIPPED_REPORT = Path(__file__).resolve().parents[1] / "docs" / "embedded" / "pretrain_report.json"
TOY = [
    "--n-styled", "64", "--n-plain", "64", "--probe-steps", "2", "--n-decoded", "32",
    "--probe-decoded-steps", "1", "--vae-steps", "2", "--unet-steps", "2", "--warmup", "1",
    "--eval-per-prompt", "1", "--eval-steps", "2", "--probe-eval-images", "48", "--threads", "1",
]  # fmt: skip
STAGES = {"data", "probes", "vae", "probes_on_decoded", "latents", "unet", "evaluate"}


def test_defaults_are_the_settings_of_the_shipped_weights() -> None:
    """``python -m adaptkit.embedded.pretraining.pretrain --out DIR`` reproduces the shipped run (docs/embedded.md).

    Options added after that run must default to what the run did (they are not in its report)."""
    shipped = json.loads(SHIPPED_REPORT.read_text())["args"]
    defaults = {key: str(value) for key, value in vars(pretrain.parse_args(["--out", "x"])).items()}
    for where in ("out", "work"):
        del shipped[where], defaults[where]
    assert {key: defaults[key] for key in shipped} == shipped
    assert defaults["eval_steps"] == str(shipped_sampling_steps()) and defaults["probe_eval_images"] == "2000"


def shipped_sampling_steps() -> int:
    return int(json.loads(SHIPPED_REPORT.read_text())["sampling"]["steps"])


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrain")
    pretrain.main(["--out", str(out), "--work", str(out / "work"), *TOY])
    return out


def test_every_stage_runs_and_writes_a_loadable_model_and_probes(toy_run: Path) -> None:
    report = json.loads((toy_run / "pretrain_report.json").read_text())
    assert set(report["stages"]) == STAGES
    assert report["stages"]["unet"]["steps"] == 2 and report["stages"]["vae"]["steps"] == 2
    assert len(report["stages"]["evaluate"]["heldout"]["5.0"]) > 0
    probes = Probes.load(toy_run / "probes")
    assert probes.config["decoded_tuning"]["steps"] == 1
    assert set(probes.config["heldout_accuracy_decoded"]) == {"shape", "colour", "background", "size", "style"}
    pipe = with_sampler(load_pipeline(toy_run / "tiny-sd"))
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.scaling_factor == pytest.approx(report["vae_scaling_factor"])
    images = generate(pipe, ["a small red circle on a white background"], [0], steps=2)
    assert images[0].size == (64, 64)


def test_resume_trains_only_the_unet_on_the_cached_latents(toy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vae_before = (toy_run / "work" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    pretrain.main(["--out", str(toy_run), "--work", str(toy_run / "work"), "--resume", *TOY, "--unet-steps", "1"])
    assert "reusing probes, VAE and cached latents" in capsys.readouterr().out
    report = json.loads((toy_run / "pretrain_report.json").read_text())
    assert set(report["stages"]) == {"unet", "evaluate"} and report["stages"]["unet"]["steps"] == 1
    assert (toy_run / "work" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == vae_before
