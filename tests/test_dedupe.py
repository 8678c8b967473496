"""``adaptkit data dedupe``: near-duplicate images (re-encoded, resized) are grouped by perceptual hash,
the keys to drop are written, and ``[data] exclude_keys`` leaves them out of the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptkit.cli import main
from adaptkit.data.dedupe import near_duplicate_groups


def noise_image(seed: int, side: int = 64) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST)


def write_folder(root: Path) -> Path:
    """Four distinct images, a resized JPEG copy of the first and a slightly brightened copy of the third
    (an exact copy would already be one example: imagefolder keys are content hashes)."""
    root.mkdir(parents=True)
    rows = []
    for i in range(4):
        noise_image(i).save(root / f"img_{i}.png")
        rows.append({"file_name": f"img_{i}.png", "text": f"picture {i}"})
    noise_image(0).resize((48, 48)).save(root / "img_0_small.jpg", quality=85)
    brighter = np.clip(np.asarray(noise_image(2)).astype(int) + 6, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(root / "img_2_copy.png")
    rows += [{"file_name": "img_0_small.jpg", "text": "picture 0 again"}, {"file_name": "img_2_copy.png", "text": "2"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def write_recipe(tmp_path: Path, folder: Path, **data: object) -> Path:
    lines = [
        "[data]",
        'adapter = "imagefolder"',
        *(f"{key} = {json.dumps(value)}" for key, value in data.items()),
        "[data.options]",
        f'source = "{folder}"',
        "[method]",
        'name = "lora"',
    ]
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_dedupe_groups_the_copies_and_the_run_leaves_them_out(tmp_path: Path, capsys) -> None:
    folder = write_folder(tmp_path / "images")
    exclude = tmp_path / "dupes.txt"
    assert main(["data", "dedupe", str(write_recipe(tmp_path, folder)), "--exclude-file", str(exclude)]) == 0
    out = capsys.readouterr().out
    assert "6 images, 2 near-duplicate groups, 2 to drop" in out
    dropped = exclude.read_text().split()
    assert len(dropped) == 2 and len(set(dropped)) == 2
    assert f'use [data] exclude_keys = "{exclude}"' in out

    from adaptkit.data.loading import build_adapter
    from adaptkit.data.run_examples import load_run_examples
    from adaptkit.recipe import load_recipe

    recipe = load_recipe(write_recipe(tmp_path, folder, exclude_keys=str(exclude)))
    examples = load_run_examples(build_adapter("imagefolder", recipe.data.options), recipe.data)
    kept = [examples[i].captions[0] for i in range(len(examples))]
    assert sorted(kept) == ["picture 0", "picture 1", "picture 2", "picture 3"]


def test_grouping_links_chains_and_respects_the_distance() -> None:
    bits = np.zeros((4, 64), dtype=bool)
    bits[1, :3] = True  # 3 bits from 0
    bits[2, :6] = True  # 3 bits from 1, 6 from 0: linked through 1
    bits[3, 30:50] = True  # far from all
    groups = near_duplicate_groups(["a", "b", "c", "d"], bits, distance=3)
    assert [g.keys for g in groups] == [("a", "b", "c")] and groups[0].dropped == ("b", "c")
    assert near_duplicate_groups(["a", "b", "c", "d"], bits, distance=2) == []


def test_an_unreadable_exclude_file_and_a_bad_distance_are_one_line(tmp_path: Path, capsys) -> None:
    folder = write_folder(tmp_path / "images")
    assert main(["data", "dedupe", str(write_recipe(tmp_path, folder)), "--distance", "70"]) == 2
    assert "--distance 70: a Hamming distance between 64-bit hashes (valid: 0..64)" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, folder, exclude_keys=str(tmp_path / "missing.txt"))
    assert main(["data", "preview", str(recipe), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.exclude_keys:" in err[0] and "missing.txt: cannot read it" in err[0]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
