"""The shipped embedded model and probes: they load offline and measure what they claim."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import adaptkit.embedded as embedded
from adaptkit.embedded.data import make_batch
from adaptkit.embedded.evaluate import eval_prompts, generate, score
from adaptkit.embedded.pretraining.evaluate import round_trip_ceiling
from adaptkit.embedded.pretraining.models import load_pipeline, with_sampler
from adaptkit.embedded.probes import Probes
from adaptkit.embedded.styles import STYLE_CLASSES
from adaptkit.embedded.world import EVAL_SEED_OFFSET

ROOT = Path(embedded.__file__).parent
MODEL_DIR = ROOT / "tiny-sd"
PROBES_DIR = ROOT / "probes"
REPORT = Path(__file__).resolve().parents[1] / "docs" / "embedded" / "pretrain_report.json"

pytestmark = pytest.mark.skipif(not (PROBES_DIR / "probes.safetensors").exists(), reason="embedded weights not built")


@pytest.fixture(scope="module")
def probes() -> Probes:
    return Probes.load(PROBES_DIR)


@pytest.fixture(scope="module")
def pipe():
    p = with_sampler(load_pipeline(MODEL_DIR))
    p.set_progress_bar_config(disable=True)
    return p


def test_recorded_probe_accuracy_is_high(probes: Probes) -> None:
    acc = probes.config["heldout_accuracy"]
    for head in ("shape", "colour", "style"):
        assert acc[head] >= 0.95, (head, acc)


def test_probes_are_accurate_on_fresh_generator_images(probes: Probes) -> None:
    torch.manual_seed(0)
    batch = make_batch(240, EVAL_SEED_OFFSET + 424_242, "any", STYLE_CLASSES)
    from PIL import Image

    images = [Image.fromarray(a) for a in batch.images]
    pred = probes.predict(images)
    for head in ("shape", "colour", "style"):
        names = probes.labels[head]
        truth = [names[i] for i in batch.labels[head]]
        acc = float(np.mean([p == t for p, t in zip(pred[head], truth)]))
        assert acc >= 0.95, (head, acc)


def test_probes_judge_vae_round_trips_as_recorded(pipe, probes: Probes) -> None:
    """Generated images are decoded images: the probes must read them as well as recorded."""
    from adaptkit.embedded.pretraining.training import reconstruct

    recorded = probes.config["heldout_accuracy_decoded"]
    batch = make_batch(240, EVAL_SEED_OFFSET + 515_151, "any", STYLE_CLASSES)
    with torch.no_grad():
        decoded = reconstruct(pipe.vae, batch.images)
    pred = probes.predict(decoded)
    for head in ("shape", "colour", "style"):
        names = probes.labels[head]
        acc = float(np.mean([p == names[t] for p, t in zip(pred[head], batch.labels[head])]))
        assert acc >= 0.92 and abs(acc - recorded[head]) <= 0.05, (head, acc, recorded[head])


def test_pipeline_loads_offline_and_samples_fast(pipe) -> None:
    t0 = time.time()
    images = generate(pipe, ["a large red circle on a white background"] * 2, [1, 2], steps=20)
    assert time.time() - t0 < 20
    assert [im.size for im in images] == [(64, 64), (64, 64)]
    again = generate(pipe, ["a large red circle on a white background"] * 2, [1, 2], steps=20)
    assert np.array_equal(np.asarray(images[0]), np.asarray(again[0]))
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def test_base_model_follows_heldout_prompts_as_recorded_live(pipe, probes: Probes) -> None:
    report = json.loads(REPORT.read_text())
    guidance = float(report["sampling"]["guidance_scale"])
    specs = eval_prompts("eval", per_prompt=2, seed=777_000)  # 24 held-out prompts × 2 seeds
    images = generate(pipe, [s.prompt for s in specs], [s.seed for s in specs], 20, guidance)
    res = score(probes, images, specs)
    recorded = report["stages"]["evaluate"]["heldout"][str(guidance)]
    # the bar, on 48 fresh held-out images, and within sampling noise of the recorded figures
    for head in ("shape", "colour"):
        assert res[head] >= 0.8 and recorded[head] >= 0.8, (head, res, recorded)
        assert abs(res[head] - recorded[head]) <= 0.1, (head, res, recorded)
    assert res["style_plain"] >= 0.8 and res["style_ink"] <= 0.1, res


def test_round_trip_ceiling_lets_an_ink_model_keep_its_colours(pipe, probes: Probes) -> None:
    """The ceiling of a perfect model: ground truth through the VAE. The demo's colour target (90 %
    of the base's) is measurable only if the decoder keeps the ink wash's hue (the 600-step VAE of
    sessions 1-4 read 84 %); docs/embedded.md: plain 100 %, ink 97 % on 600 images."""
    plain = round_trip_ceiling(pipe.vae, probes, "plain", n=120)
    ink = round_trip_ceiling(pipe.vae, probes, "ink", n=120)
    assert plain["colour"] >= 0.95 and plain["shape"] >= 0.95 and plain["style"] >= 0.95
    assert ink["shape"] >= 0.95 and ink["style"] >= 0.95
    assert ink["colour"] >= 0.92
