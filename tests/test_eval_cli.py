"""``adaptkit eval`` / ``adaptkit compare`` and checkpoint ranking on the tiny model.

The metrics here are a local plugin with known formulas (mean brightness as the style axis,
mean red share as the fidelity axis), so every saved figure can be recomputed from the saved
images; the real metrics have their own property tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptkit.cli import main
from adaptkit.evaluation.context import Figure
from adaptkit.evaluation.prompts import REPORT_PROMPTS
from adaptkit.evaluation.ranking import best, rule_text, trade_off

METRICS_PLUGIN = """
import numpy as np
import adaptkit
from adaptkit.evaluation.context import Figure, MetricUnavailable


def _mean(images, channel=None):
    arrays = [np.asarray(i, dtype=np.float64) / 255 for i in images]
    return float(np.mean([a.mean() if channel is None else a[..., channel].mean() for a in arrays]))


def _figure(metric, images_base, images_adapted, channel):
    b, a = _mean(images_base, channel), _mean(images_adapted, channel)
    return Figure(metric, "mean", a - b, a - b - 0.01, a - b + 0.01, True, len(images_base), metric, b, a)


class Brightness(adaptkit.Metric):
    name = "test_style"
    description = "mean brightness (test metric)"

    def compute(self, context):
        return [_figure("test_style", context.pairs.base, context.pairs.adapted, None)]


class Red(adaptkit.Metric):
    name = "test_fidelity"
    description = "mean red share (test metric)"

    def compute(self, context):
        return [_figure("test_fidelity", context.pairs.base, context.pairs.adapted, 0)]


class Offline(adaptkit.Metric):
    name = "needs_hub"
    description = "always unavailable (test metric)"

    def compute(self, context):
        raise MetricUnavailable(
            "needs_hub: model 'org/missing' is not available offline; set [eval.needs_hub] model = '/path'"
        )


@adaptkit.hookimpl
def register_metrics(register):
    for cls in (Brightness, Red, Offline):
        register(cls)
"""

AXES = ["--style-figure", "test_style", "--fidelity-figure", "test_fidelity/mean"]
EVAL = {
    "metrics": ["test_style", "test_fidelity", "needs_hub"],
    "prompt_sets": ["report"],
    "prompts": 2,
    "seeds_per_prompt": 2,
    "batch_size": 3,
}
SAMPLE = {"prompts": [], "steps": 2, "guidance": 2.0}


def make_run(folder: Path, model_dir: Path, method_name: str, name: str, **sections) -> Path:
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import run, write_recipe

    plugin = folder / "eval_metrics.py"
    plugin.write_text(METRICS_PLUGIN)
    data = folder / "naruto"
    if not data.exists():
        write_naruto(data, rows=2)
    recipe = write_recipe(
        folder,
        model_dir,
        data,
        method_name,
        name=name,
        train={"steps": 2},
        checkpoint={"every": 1, "keep": 3},
        sample=SAMPLE,
        eval=EVAL,
        plugins={"modules": [str(plugin)]},
        **sections,
    )
    run(recipe)
    return folder / "runs" / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("eval-runs")
    return {
        "lora": make_run(folder, tiny_model_dir, "lora", "lora-run"),
        "loha": make_run(folder, tiny_model_dir, "loha", "loha-run", method={"options": {"rank": 2, "alpha": 2}}),
    }


def _mean(paths: list[Path], channel: int | None) -> float:
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255 for p in paths]
    return float(np.mean([a.mean() if channel is None else a[..., channel].mean() for a in arrays]))


def test_run_end_writes_metrics_json_result_and_report(runs: dict[str, Path]) -> None:
    run_dir = runs["lora"]
    saved = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert saved["checkpoint"] == "final" and saved["settings"]["images"] == 4
    assert saved["settings"]["sampler"] == "ddim" and saved["settings"]["method"] == "lora"
    first, third = REPORT_PROMPTS[0], REPORT_PROMPTS[2]  # 2 of the report's 4 prompts, spread over the set
    assert [(p["prompt"], p["set"], p["seed"]) for p in saved["pairs"]] == [
        (first, "report", 0),
        (first, "report", 1),
        (third, "report", 0),
        (third, "report", 1),
    ]
    images = run_dir / "eval" / "images"
    base = sorted(images.glob("base-*.png"))
    adapted = sorted(images.glob("adapted-*.png"))
    assert len(base) == len(adapted) == 4
    by_metric = {f["metric"]: f for f in saved["figures"]}
    for metric, channel in (("test_style", None), ("test_fidelity", 0)):
        figure = by_metric[metric]
        assert figure["base"] == pytest.approx(_mean(base, channel), abs=1e-2)  # PNG round trip of the images
        assert figure["adapted"] == pytest.approx(_mean(adapted, channel), abs=1e-2)
        assert figure["value"] == pytest.approx(figure["adapted"] - figure["base"])
    assert saved["unavailable"] == {
        "needs_hub": "needs_hub: model 'org/missing' is not available offline; set [eval.needs_hub] model = '/path'"
    }
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 2 and result["images_per_s"] > 0
    assert (run_dir / "eval" / "report.html").is_file()


def test_pairs_share_prompt_seed_and_sampler(runs: dict[str, Path]) -> None:
    """With the base model as the 'adapted' one, every pair is identical: same prompt, seed and settings."""
    from adaptkit.evaluation.runner import Evaluation
    from adaptkit.sampling.generate import generate_images
    from adaptkit.sampling.pipeline import load_pipeline

    evaluation = Evaluation(runs["lora"], metrics=["test_style"])
    evaluation.adapted_pipeline = lambda checkpoint: load_pipeline(  # type: ignore[method-assign]
        evaluation.recipe.model, evaluation.sampler, evaluation.registries
    )
    result = evaluation.evaluate()
    for b, a in zip(result.pairs.base, result.pairs.adapted):
        assert np.array_equal(np.asarray(b), np.asarray(a))
    assert result.figure("test_style").value == 0.0
    # an image depends on its own seed only, not on the batch it was generated in
    alone = generate_images(
        load_pipeline(evaluation.recipe.model, evaluation.sampler, evaluation.registries),
        [result.pairs.prompts[3]],
        [result.pairs.seeds[3]],
        evaluation.settings,
    )[0]
    diff = np.abs(np.asarray(alone, dtype=int) - np.asarray(result.pairs.base[3], dtype=int))
    assert diff.max() <= 2
    assert not np.array_equal(np.asarray(result.pairs.base[2]), np.asarray(result.pairs.base[3]))  # seeds differ


def test_eval_cli_ranks_every_checkpoint(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = runs["lora"]
    assert main(["eval", str(run_dir), "--checkpoints", "all", "--tolerance", "0.5", *AXES]) == 0
    out = capsys.readouterr().out
    assert f"rule: {rule_text(0.5)}" in out
    ranking = json.loads((run_dir / "eval" / "ranking.json").read_text())
    labels = [c["label"] for c in ranking["checkpoints"]]
    assert labels == ["step-000001", "step-000002"]
    for label in labels:
        saved = json.loads((run_dir / "eval" / "checkpoints" / label / "metrics.json").read_text())
        style = next(f for f in saved["figures"] if f["metric"] == "test_style")
        row = next(c for c in ranking["checkpoints"] if c["label"] == label)
        assert row["style_gain"] == pytest.approx(style["adapted"] - style["base"])
    assert ranking["best"] in labels and ranking["tolerance"] == 0.5


def test_a_checkpoint_is_scored_with_its_ema_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    """With EMA on, the run's result holds the EMA weights; ranking a checkpoint must score those too."""
    import torch

    from adaptkit.evaluation.runner import Evaluation, checkpoint_pipeline
    from adaptkit.training.checkpoint import load_checkpoint

    run_dir = make_run(tmp_path, tiny_model_dir, "lora", "ema-run", ema={"enabled": True, "decay": 0.5})
    evaluation = Evaluation(run_dir)
    last = sorted((run_dir / "checkpoints").iterdir())[-1]  # the final step, as the result
    scored = checkpoint_pipeline(evaluation, last).unet.state_dict()
    result = evaluation.adapted_pipeline(None).unet.state_dict()
    trained = load_checkpoint(last).trainable
    lora_keys = [key for key in scored if ".lora_" in key]
    assert lora_keys
    for key in lora_keys:
        assert torch.allclose(scored[key], result[key.replace(".default.", ".default_0.")], atol=1e-6), key
    assert any(not torch.equal(scored[key], trained[f"unet.{key}"]) for key in lora_keys)  # not the live weights


def test_eval_cli_refuses_bad_arguments(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["eval", str(runs["lora"]), "--checkpoints", str(tmp_path)]) == 2
    assert "not a complete checkpoint folder (want all, latest or a path)" in capsys.readouterr().err
    assert main(["eval", str(runs["lora"]), "--tolerance", "2"]) == 2
    assert "--tolerance 2.0: must be a fraction in [0, 1)" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not an adaptkit run directory" in capsys.readouterr().err
    assert main(["eval", str(runs["lora"]), "--metric", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_eval_set_changes_how_not_what(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    """``--set eval.*`` / ``sample.*`` re-evaluate a run differently; other keys are refused."""
    import shutil

    run_dir = Path(shutil.copytree(runs["lora"], tmp_path / "lora-run"))
    before = json.loads((run_dir / "eval" / "metrics.json").read_text())["settings"]["images"]
    assert before == EVAL["prompts"] * EVAL["seeds_per_prompt"]
    args = ["eval", str(run_dir), "--metric", "test_style", "--set", "eval.seeds_per_prompt=3"]
    assert main([*args, "--set", "sample.guidance=1.5"]) == 0
    settings = json.loads((run_dir / "eval" / "metrics.json").read_text())["settings"]
    assert settings["images"] == EVAL["prompts"] * 3 and settings["guidance"] == 1.5
    assert settings["overrides"] == ["eval.seeds_per_prompt=3", "sample.guidance=1.5"]  # traceable
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--set", "train.steps=9"]) == 2
    assert "--set train.steps=9: only eval.* keys and sample.{sampler,options," in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--set", "sample.every=5"]) == 2  # no effect on an evaluation
    assert "--set sample.every=5: only eval.* keys" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--set", "eval.seeds_per_prompt=0"]) == 2
    assert "--set eval.seeds_per_prompt=0: eval.seeds_per_prompt:" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--set", "sample.options.solver_ordr=2"]) == 2
    assert "--set sample.options.solver_ordr=2: sample.options.solver_ordr: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["lora", "loha"])
def test_adapter_strength_scales_every_adapter_layer(runs: dict[str, Path], method: str) -> None:
    """Strength 0 gives the base model's images exactly, 1 the adapter as trained, from any order of calls."""
    import torch

    from adaptkit.evaluation.runner import Evaluation
    from adaptkit.sampling.adapter_scale import adapter_layers

    evaluation = Evaluation(runs[method], metrics=["test_style"])
    adapted = evaluation.adapted_pipeline(None)
    layers = adapter_layers(adapted)
    assert layers
    torch.manual_seed(0)
    with torch.no_grad():  # make the adapter's effect large, so that strength visibly matters
        for layer in layers:
            for name, param in layer.named_parameters():
                if "lora_B" in name or "hada_w2" in name:
                    param.normal_(0.0, 0.5)
    trained = [dict(layer.scaling) for layer in layers]
    half = evaluation.score(adapted, None, 0.5)
    assert [dict(layer.scaling) for layer in layers] == [{k: v * 0.5 for k, v in t.items()} for t in trained]
    zero = evaluation.score(adapted, None, 0.0)
    one = evaluation.score(adapted, None, 1.0)
    assert [dict(layer.scaling) for layer in layers] == trained  # back exactly to the trained strength
    arrays = lambda images: [np.asarray(i) for i in images]  # noqa: E731
    assert all(np.array_equal(b, a) for b, a in zip(arrays(zero.pairs.base), arrays(zero.pairs.adapted)))
    assert not all(np.array_equal(b, a) for b, a in zip(arrays(one.pairs.base), arrays(one.pairs.adapted)))
    assert not all(np.array_equal(h, a) for h, a in zip(arrays(half.pairs.adapted), arrays(one.pairs.adapted)))
    assert zero.figure("test_style").value == 0.0 and one.settings["adapter_scale"] == 1.0


def test_a_model_without_adapter_layers_has_no_strength(runs: dict[str, Path]) -> None:
    from adaptkit.errors import UserError
    from adaptkit.evaluation.runner import Evaluation
    from adaptkit.sampling.adapter_scale import set_adapter_scale
    from adaptkit.sampling.pipeline import load_pipeline

    evaluation = Evaluation(runs["lora"], metrics=["test_style"])
    base = load_pipeline(evaluation.recipe.model, evaluation.sampler, evaluation.registries)
    assert set_adapter_scale(base, 1.0) is base
    with pytest.raises(UserError, match=r"eval.adapter_scale = 0.5: this model has no adapter layers to scale"):
        set_adapter_scale(base, 0.5)


def test_eval_scores_several_strengths_against_one_set_of_base_images(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    run_dir = Path(shutil.copytree(runs["lora"], tmp_path / "lora-run"))
    scales = ["--set", "eval.adapter_scales=[1.0, 0.0, 0.5]"]
    assert main(["eval", str(run_dir), "--metric", "test_style", "--metric", "test_fidelity", *scales]) == 0
    saved = json.loads((run_dir / "eval" / "scales.json").read_text())["scales"]
    assert [s["scale"] for s in saved] == [0.0, 0.5, 1.0]  # sorted, each once
    headline = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert saved[2]["figures"] == headline["figures"]  # strength 1 is the headline: the same base images
    assert all(f["value"] == 0.0 for f in saved[0]["figures"])  # strength 0 is the base model
    assert (run_dir / "eval" / "scales.png").is_file()
    assert "Adapter strength" in (run_dir / "eval" / "report.html").read_text()
    assert main(["eval", str(run_dir), "--metric", "test_style"]) == 0  # no strengths: no stale plot
    assert not (run_dir / "eval" / "scales.json").exists() and not (run_dir / "eval" / "scales.png").exists()
    assert "Adapter strength" not in (run_dir / "eval" / "report.html").read_text()


def test_compare_two_runs(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "compare.html"
    assert main(["compare", str(runs["lora"]), str(runs["loha"]), "--out", str(out), *AXES]) == 0
    page = out.read_text()
    # grid: base row + one row per run, 2 prompt columns; plus the scatter plot
    assert page.count('<img src="data:image/png;base64,') == 3 * 2 + 1
    assert "lora-run (lora)" in page and "loha-run (loha)" in page
    printed = capsys.readouterr().out
    assert "style gain (test_style/mean) vs fidelity loss (test_fidelity/mean)" in printed
    assert printed.count("◀ best") == 1 and "rule: best = highest style gain" in printed


def test_compare_refuses_other_base_models(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(runs["loha"], other)
    recipe = other / "recipe.toml"
    text = recipe.read_text()
    base = json.loads((runs["loha"] / "eval" / "metrics.json").read_text())["settings"]["base_model"]
    recipe.write_text(text.replace(json.dumps(base), json.dumps(base + "-other")))
    assert main(["compare", str(runs["lora"]), str(other), "--out", str(tmp_path / "c.html")]) == 2
    assert "compare runs of one base model" in capsys.readouterr().err


def test_compare_refuses_runs_evaluated_with_other_sampler_settings(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    import shutil

    other = Path(shutil.copytree(runs["loha"], tmp_path / "other"))
    metrics_path = other / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["settings"]["guidance"] = metrics["settings"]["guidance"] + 1  # as `eval --set sample.guidance=...`
    metrics_path.write_text(json.dumps(metrics))
    assert main(["compare", str(runs["lora"]), str(other), "--out", str(tmp_path / "c.html")]) == 2
    assert "evaluated with sample.guidance = " in capsys.readouterr().err


def _fig(metric: str, name: str, base: float, adapted: float) -> Figure:
    return Figure(metric, name, adapted - base, adapted - base, adapted - base, True, 10, "", base, adapted)


def test_ranking_picks_the_highest_style_gain_within_tolerance() -> None:
    checkpoints = {  # base style 0.1, base fidelity 0.80
        "step-100": [_fig("style", "sim", 0.1, 0.2), _fig("clip_score", "score", 0.8, 0.80)],
        "step-200": [_fig("style", "sim", 0.1, 0.4), _fig("clip_score", "score", 0.8, 0.77)],  # loses 3.75%
        "step-300": [_fig("style", "sim", 0.1, 0.6), _fig("clip_score", "score", 0.8, 0.70)],  # loses 12.5%
    }
    offs = [trade_off(label, figures) for label, figures in checkpoints.items()]
    assert [round(t.style_gain, 3) for t in offs] == [0.1, 0.3, 0.5]
    assert best(offs, 0.05).label == "step-200"
    assert best(offs, 0.20).label == "step-300"
    assert best(offs, 0.0).label == "step-100"
    # none within tolerance: the one that loses least
    worse = [trade_off("a", [_fig("style", "s", 0, 1), _fig("clip_score", "c", 1, 0.5)]), offs[2]]
    assert best(worse, 0.05).label == "step-300"
    # the embedded probes give both axes when style / clip_score are absent
    probes = trade_off(
        "p", [_fig("embedded_probes", "target_style", 0.2, 0.5), _fig("embedded_probes", "both", 0.5, 0.4)]
    )
    assert probes is not None and probes.style_gain == pytest.approx(0.3) and probes.fidelity_loss == pytest.approx(0.1)
