"""Property tests of the built-in metrics, on tiny CLIP/DINOv2 models and constructed encoders."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from adaptkit.builtins.metrics import _common
from adaptkit.builtins.metrics.clip_score import ClipScoreMetric, clip_scores
from adaptkit.builtins.metrics.cmmd import CmmdMetric, cmmd
from adaptkit.builtins.metrics.content import ContentMetric
from adaptkit.builtins.metrics.kid import KidMetric, kid, subset_size
from adaptkit.builtins.metrics.style import StyleMetric
from adaptkit.embedded.probe_metric import EmbeddedProbesMetric
from adaptkit.evaluation import EvalContext, EvalPairs, Figure, MetricUnavailable
from adaptkit.evaluation.encoders import DEFAULT_CLIP, unavailable_message
from adaptkit.testing.contracts import MetricContract, build, small_eval_context
from adaptkit.testing.tiny_encoders import save_tiny_clip, save_tiny_dino

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_dino(tmp_path_factory.mktemp("dino")))


def noise_images(n: int, mean: tuple[int, int, int], seed: int, size: int = 32) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(np.clip(rng.normal(mean, 30, (size, size, 3)), 0, 255).astype(np.uint8)) for _ in range(n)]


def context(base: list, adapted: list, references: list, prompts: list[str] | None = None, **kw: Any) -> EvalContext:
    n = len(base)
    prompts = prompts or [f"prompt {i}" for i in range(n)]
    pairs = EvalPairs(
        prompts=prompts, sets=kw.pop("sets", ["in-style"] * n), seeds=list(range(n)), base=base, adapted=adapted
    )
    return EvalContext(pairs=pairs, references=references, style=kw.pop("style", None), device=CPU, options={})


# --------------------------------------------------------------------------- KID and CMMD


def _gaussian(n: int, shift: float, seed: int, d: int = 16) -> np.ndarray:
    """Unit-norm rows (like CLIP embeddings), shifted along the first axis before normalising."""
    x = np.random.default_rng(seed).normal(0, 1, (n, d))
    x[:, 0] += shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_kid_of_identical_sets_is_about_zero_and_a_shift_makes_it_larger():
    x = _gaussian(100, 0.0, 1)
    identical = kid(x, x.copy(), size=100, subsets=5)
    same_distribution = kid(x, _gaussian(100, 0.0, 2), size=100)
    shifted = kid(x, _gaussian(100, 3.0, 2), size=100)
    more_shifted = kid(x, _gaussian(100, 6.0, 2), size=100)
    # unbiased for independent samples; an identical set is off only by the O(1/n) self-pair terms
    assert abs(identical) < 0.01 and abs(identical) < 0.1 * shifted
    assert shifted > 10 * abs(same_distribution) and more_shifted > shifted


def test_kid_subset_size_never_exceeds_the_sample():
    assert subset_size(5, 7, 1000) == 5 and subset_size(50, 7, 10) == 7 and subset_size(50, 70, 10) == 10
    x, y = _gaussian(5, 0.0, 1), _gaussian(7, 2.0, 2)
    assert np.isfinite(kid(x, y, size=1000, subsets=5))  # a default subset of 1000 on 5 images works
    with pytest.raises(ValueError):
        kid(x[:1], y)


def test_cmmd_identical_is_zero_and_shift_is_larger():
    x = _gaussian(40, 0.0, 1)
    assert cmmd(x, x.copy()) == pytest.approx(0.0, abs=1e-9)
    near, far = cmmd(x, _gaussian(40, 0.0, 2)), cmmd(x, _gaussian(40, 5.0, 2))
    assert far > near > 0


def test_kid_and_cmmd_metrics_prefer_adapted_images_drawn_from_the_references(tiny_clip: str):
    refs = noise_images(8, (200, 60, 60), seed=1)
    adapted = noise_images(8, (200, 60, 60), seed=2)
    base = noise_images(8, (40, 60, 220), seed=3)
    ctx = context(base, adapted, refs)
    for metric in (KidMetric, CmmdMetric):
        (figure,) = build(metric, {"model": tiny_clip, "n_resamples": 50}, "eval.metric").compute(ctx)
        assert figure.adapted < figure.base, figure
        assert figure.value == pytest.approx(figure.adapted - figure.base)
        assert figure.ci_high < 0 and not figure.higher_is_better
    (same,) = build(CmmdMetric, {"model": tiny_clip, "n_resamples": 20}, "eval.metric").compute(
        context(refs, refs, refs)
    )
    assert same.base == pytest.approx(0.0, abs=1e-6) and same.adapted == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- CLIPScore with a constructed encoder

COLOURS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230), "yellow": (230, 230, 30)}


class ColourEncoder:
    """A deterministic encoder where an image of colour c and the prompt naming c embed close."""

    axes = list(COLOURS)

    def _vec(self, weights: np.ndarray) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.tensor(weights, dtype=torch.float32) + 0.05, dim=-1)

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        rows = []
        for im in images:
            mean = np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
            dist = np.array([np.linalg.norm(mean - np.array(COLOURS[c])) for c in self.axes])
            rows.append(np.exp(-dist / 40.0))
        return self._vec(np.stack(rows))

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self._vec(np.stack([[float(c in t) for c in self.axes] for t in texts]))


def test_paired_image_prompt_sets_score_above_shuffled_ones(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_common, "load_encoder", lambda *a, **k: ColourEncoder())
    colours = [c for c in COLOURS for _ in range(3)]
    prompts = [f"a {c} square" for c in colours]
    matching = [Image.new("RGB", (32, 32), COLOURS[c]) for c in colours]
    shuffled = matching[3:] + matching[:3]  # every image now shows another colour than its prompt
    enc = ColourEncoder()
    texts = enc.encode_texts(prompts)
    assert (
        clip_scores(enc.encode_images(matching), texts).mean() > clip_scores(enc.encode_images(shuffled), texts).mean()
    )

    (figure,) = ClipScoreMetric().compute(context(shuffled, matching, [], prompts, sets=["general"] * 12))
    assert figure.adapted > figure.base and figure.ci_low > 0
    assert figure.n == 4 and "general" in figure.description  # 4 distinct prompts, 3 seeds each
    (reverse,) = ClipScoreMetric().compute(context(matching, shuffled, [], prompts, sets=["general"] * 12))
    assert reverse.value == pytest.approx(-figure.value) and reverse.ci_high < 0


def test_clip_score_scores_only_general_prompts_when_there_are_some(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_common, "load_encoder", lambda *a, **k: ColourEncoder())
    red, blue = Image.new("RGB", (8, 8), COLOURS["red"]), Image.new("RGB", (8, 8), COLOURS["blue"])
    ctx = context([blue, blue], [red, blue], [], ["a red cat", "a red cat"], sets=["general", "in-style"])
    (figure,) = ClipScoreMetric().compute(ctx)
    assert figure.n == 1 and figure.value > 0  # only the general pair (blue → red for "red") counts


# --------------------------------------------------------------------------- content and style


@pytest.mark.parametrize("encoder", ["dino", "clip"])
def test_content_is_one_for_identical_images(encoder: str, tiny_clip: str, tiny_dino: str):
    images = noise_images(6, (120, 120, 120), seed=4)
    model = tiny_dino if encoder == "dino" else tiny_clip
    metric = build(ContentMetric, {"encoder": encoder, "model": model, "n_resamples": 50}, "eval.metric")
    (same,) = metric.compute(context(images, [im.copy() for im in images], []))
    assert same.value == pytest.approx(1.0, abs=1e-5) and same.ci_low == pytest.approx(1.0, abs=1e-5)
    (other,) = metric.compute(context(images, noise_images(6, (20, 200, 40), seed=5), []))
    assert other.value < same.value - 1e-3


def test_style_gain_is_positive_when_adapted_images_are_the_references(tiny_clip: str):
    refs = noise_images(6, (220, 180, 40), seed=6)
    base = noise_images(6, (30, 60, 200), seed=7)
    metric = build(StyleMetric, {"model": tiny_clip, "n_resamples": 100}, "eval.metric")
    (figure,) = metric.compute(context(base, refs, refs))
    assert figure.name == "style_gain" and figure.value > 0 and figure.ci_low > 0
    assert figure.value == pytest.approx(figure.adapted - figure.base)
    (none,) = metric.compute(context(base, base, refs))
    assert none.value == pytest.approx(0.0, abs=1e-6)


def test_style_without_references_is_unavailable(tiny_clip: str):
    images = noise_images(2, (0, 0, 0), seed=0)
    with pytest.raises(MetricUnavailable, match="needs at least 1 held-out reference"):
        build(StyleMetric, {"model": tiny_clip}, "eval.metric").compute(context(images, images, []))


# --------------------------------------------------------------------------- missing models


def test_missing_model_is_one_line_and_other_metrics_still_compute(
    monkeypatch: pytest.MonkeyPatch, tiny_clip: str, tiny_dino: str
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ctx = context(noise_images(4, (90, 90, 90), 1), noise_images(4, (90, 90, 90), 2), noise_images(4, (9, 9, 9), 3))
    metrics = [
        StyleMetric(),  # default openai/clip-vit-large-patch14: not in this machine's cache
        build(ContentMetric, {"model": tiny_dino, "n_resamples": 20}, "eval.metric"),
        build(KidMetric, {"model": "/no/such/clip", "n_resamples": 20}, "eval.metric"),
        build(CmmdMetric, {"model": tiny_clip, "n_resamples": 20}, "eval.metric"),
    ]
    figures: list[Figure] = []
    unavailable: dict[str, str] = {}
    for metric in metrics:
        try:
            figures += metric.compute(ctx)
        except MetricUnavailable as exc:
            unavailable[metric.name] = str(exc)
    assert [f.metric for f in figures] == ["content", "cmmd"]
    assert unavailable["style"] == unavailable_message("style", DEFAULT_CLIP)
    assert unavailable["style"] == (
        "metric style needs model openai/clip-vit-large-patch14: not in the local cache; download it with "
        "`hf download openai/clip-vit-large-patch14` on a machine with network, or set "
        '[eval.style] model = "/path/to/local/copy"'
    )
    assert "/no/such/clip does not exist" in unavailable["kid"]
    assert all("\n" not in line for line in unavailable.values())


# --------------------------------------------------------------------------- embedded probes


def test_embedded_probes_score_the_rendered_world_better_than_noise():
    from adaptkit.embedded.world import caption_for, render_scene, scene_for_seed

    scenes = [scene_for_seed(1_000_000_000 + i, "eval") for i in range(8)]
    prompts = [caption_for(s.shape, s.colour, s.background, s.size) for s in scenes]
    rendered = [render_scene(s, 64) for s in scenes]
    noise = noise_images(8, (128, 128, 128), seed=9, size=64)
    ctx = context(noise, rendered, [], prompts, sets=["embedded"] * 8, style="plain")
    metric = build(EmbeddedProbesMetric, {"n_resamples": 50}, "eval.metric")
    figures = {f.name: f for f in metric.compute(ctx)}
    assert set(figures) == {"target_style", "shape", "colour", "both"}
    assert figures["shape"].adapted > figures["shape"].base
    assert figures["colour"].adapted >= 0.75
    with pytest.raises(MetricUnavailable, match="only for runs on the embedded styles"):
        metric.compute(context(noise, rendered, [], prompts))


# --------------------------------------------------------------------------- contracts


class _TinyClipContract(MetricContract):
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_clip: str) -> None:
        self.options = {"model": tiny_clip, "n_resamples": 20}


class TestStyleContract(_TinyClipContract):
    component = StyleMetric
    figures = {"style_gain"}
    bad_options = [({"n_resamples": 1}, "eval.options.n_resamples"), ({"sets": ["instyle"]}, "eval.options.sets")]


class TestClipScoreContract(_TinyClipContract):
    component = ClipScoreMetric
    figures = {"clip_score"}


class TestKidContract(_TinyClipContract):
    component = KidMetric
    figures = {"kid"}
    bad_options = [({"subset_size": 1}, "eval.options.subset_size")]


class TestCmmdContract(_TinyClipContract):
    component = CmmdMetric
    figures = {"cmmd"}


class TestContentContract(MetricContract):
    component = ContentMetric
    figures = {"content"}
    bad_options = [({"encoder": "inception"}, "eval.options.encoder")]

    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_dino: str) -> None:
        self.options = {"model": tiny_dino, "n_resamples": 20}


def test_small_eval_context_works_with_every_clip_metric(tiny_clip: str):
    ctx = small_eval_context()
    for metric in (StyleMetric, ClipScoreMetric, KidMetric, CmmdMetric):
        figures = build(metric, {"model": tiny_clip, "n_resamples": 20}, "eval.metric").compute(ctx)
        assert figures and all(f.n == 2 for f in figures)  # 4 pairs, 2 prompts


def test_encoder_embeddings_are_normalised_order_independent_and_forgotten_with_their_images(tiny_clip: str):
    import gc

    from adaptkit.evaluation.encoders import load_encoder

    enc = load_encoder("clip", tiny_clip, CPU, "style")
    assert load_encoder("clip", tiny_clip, CPU, "kid") is enc  # shared between metrics
    images = noise_images(5, (100, 50, 25), seed=11)
    first = enc.encode_images(images)
    assert torch.allclose(first.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(enc.encode_images(images[::-1]).flip(0), first)
    before = len(enc._memo)
    del images
    gc.collect()
    assert len(enc._memo) == before - 5
    assert enc.encode_texts(["a red cat", "a dog"]).shape == (2, first.shape[1])
