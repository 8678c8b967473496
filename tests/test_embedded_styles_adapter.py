"""The ``embedded-styles`` adapter, the ``testing:tiny-sd`` base and the embedded probe report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.embedded.dataset import EmbeddedStylesAdapter
from adaptkit.errors import UserError
from adaptkit.recipe import ModelSection


def test_style_sets_are_deterministic_and_content_only() -> None:
    adapter = EmbeddedStylesAdapter(EmbeddedStylesAdapter.Options(style="ink", count=6, image_size=32))
    first, again = adapter.load("train"), adapter.load("train")
    assert len(first) == 6
    for i in range(6):
        a, b = first[i], again[i]
        assert a.image.tobytes() == b.image.tobytes() and a.captions == b.captions and a.key == b.key
        assert a.image.size == (32, 32) and a.image.mode == "RGB"
        caption = a.captions[0]
        assert caption.startswith("a ") and caption.endswith("background")
        assert not any(word in caption for word in ("ink", "pop", "poster", "style", "cartoon"))
    with pytest.raises(IndexError):
        first[6]


def test_eval_split_is_held_out_from_training() -> None:
    from adaptkit.embedded.world import is_heldout

    adapter = EmbeddedStylesAdapter(EmbeddedStylesAdapter.Options(style="pop", count=20))
    train, held = adapter.load("train"), adapter.load("eval")
    train_keys = {train[i].key for i in range(len(train))}
    assert not train_keys & {held[i].key for i in range(len(held))}
    for i in range(len(held)):
        m = held[i].meta
        assert is_heldout(m["shape"], m["colour"], m["background"])
    for i in range(len(train)):
        m = train[i].meta
        assert not is_heldout(m["shape"], m["colour"], m["background"])


def test_styles_differ_in_pixels() -> None:
    import numpy as np

    images = {
        style: np.asarray(
            EmbeddedStylesAdapter(EmbeddedStylesAdapter.Options(style=style, count=1)).load()[0].image, float
        )
        for style in ("plain", "ink", "pop", "poster")
    }
    for a in images:
        for b in images:
            if a < b:
                assert np.abs(images[a] - images[b]).mean() > 5, (a, b)


def test_testing_base_builds_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptkit.models import resolve_base
    from adaptkit.testing.bases import builder_fingerprint

    monkeypatch.setenv("ADAPTKIT_CACHE", str(tmp_path))
    source = resolve_base(ModelSection(base="testing:tiny-sd"))
    folder = Path(source.location)
    assert folder.parent == tmp_path / "testing" / "tiny-sd" and (folder / "unet").is_dir()
    assert folder.name == builder_fingerprint() and len(folder.name) == 12
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert resolve_base(ModelSection(base="testing:tiny-sd")).location == str(folder)
    assert (folder / "model_index.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="no testing model 'huge'.*testing:tiny-sd"):
        resolve_base(ModelSection(base="testing:huge"))


def test_probe_report_after_a_run(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training_helpers import run, write_recipe

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        None,
        "lora",
        data={"adapter": "embedded-styles", "resolution": 32, "options": {"style": "pop", "count": 8}},
        train={"steps": 2},
        sample={"prompts": [], "steps": 2},
        eval={"embedded_probes": True, "prompts": 4},
    )
    _, result = run(recipe)
    saved = json.loads((tmp_path / "runs" / "run" / "eval" / "metrics.json").read_text())
    assert saved["checkpoint"] == "final" and saved["settings"]["images"] == 4 and not saved["unavailable"]
    assert result.steps == 2
    figures = {f["name"]: f for f in saved["figures"] if f["metric"] == "embedded_probes"}
    assert set(figures) == {"target_style", "shape", "colour", "both"}
    for figure in figures.values():
        for model in ("base", "adapted"):
            assert figure[model] in {0.0, 0.25, 0.5, 0.75, 1.0}  # fractions of 4 images
        assert figure["value"] == pytest.approx(figure["adapted"] - figure["base"])
    for model in ("base", "adapted"):
        assert figures["both"][model] <= min(figures["shape"][model], figures["colour"][model])
    assert (tmp_path / "runs" / "run" / "eval" / "before-after.png").is_file()


def test_probe_report_refuses_other_datasets(tmp_path: Path, tiny_model_dir: Path) -> None:
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import run, write_recipe

    data = write_naruto(tmp_path / "naruto", rows=2).path
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data,
        "lora",
        train={"steps": 1},
        sample={"prompts": []},
        eval={"embedded_probes": True},
    )
    with pytest.raises(UserError, match="eval.embedded_probes: needs data.adapter = 'embedded-styles' .got 'naruto'."):
        run(recipe)  # refused when the recipe is resolved, before any training


def test_style_set_exports_as_an_imagefolder_the_imagefolder_adapter_reads(tmp_path: Path, capsys) -> None:
    import numpy as np

    from adaptkit.cli import main
    from adaptkit.data.loading import build_adapter
    from adaptkit.testing.datasets import isolated_datasets

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[data]\nadapter = "embedded-styles"\n[data.options]\nstyle = "poster"\ncount = 5\n[method]\nname = "lora"\n'
    )
    out = tmp_path / "poster"
    assert main(["data", "export", str(recipe), str(out), "--limit", "4"]) == 0
    assert "wrote 4 images" in capsys.readouterr().out
    original = EmbeddedStylesAdapter(EmbeddedStylesAdapter.Options(style="poster", count=5)).load()
    with isolated_datasets(tmp_path / "cache"):
        exported = build_adapter("imagefolder", {"source": str(out)}, source="test").load()
        assert len(exported) == 4
        by_caption = {}
        for i in range(4):
            by_caption.setdefault(exported[i].captions[0], []).append(np.asarray(exported[i].image))
    for i in range(4):
        assert any(np.array_equal(np.asarray(original[i].image), a) for a in by_caption[original[i].captions[0]])
    assert main(["data", "export", str(recipe), str(out)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_a_changed_builder_gets_a_fresh_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache folder follows the builders' sources: a stale copy built by other code is not reused."""
    from adaptkit.models import resolve_base
    from adaptkit.testing import bases

    monkeypatch.setenv("ADAPTKIT_CACHE", str(tmp_path))
    first = Path(resolve_base(ModelSection(base="testing:tiny-sd")).location)
    monkeypatch.setattr(bases, "builder_fingerprint", lambda: "0123456789ab")
    second = Path(resolve_base(ModelSection(base="testing:tiny-sd")).location)
    assert second != first and second.name == "0123456789ab" and (second / "unet").is_dir() and first.is_dir()
