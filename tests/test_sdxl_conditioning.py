"""SDXL's conditioning in training: both text encoders, the pooled embedding, and time ids from each
image's original size, crop and bucket, checked against numbers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.testing.datasets import pattern_image, write_imagefolder
from adaptkit.testing.tiny_sdxl import TEXT_WIDTHS, save_tiny_sdxl_pipeline
from adaptkit.training.batches import Collate

from training_helpers import make_trainer, write_recipe


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.mark.parametrize("cache_latents", [True, False])
def test_time_ids_of_a_bucketed_centre_cropped_image(tmp_path, sdxl_dir, cache_latents) -> None:
    """A 100×56 image, 64 px buckets in steps of 8 (4096 pixels, aspect ≤ 2):

    aspect 100/56 = 1.786 is nearest (log scale) the 80×48 bucket (1.667; the next, 72×56, is 1.286);
    covering 80×48 scales by max(80/100, 48/56) = 0.857 to 86×48; the centre crop starts at
    top 0, left round((86 - 80) / 2) = 3. time_ids = original (56, 100) + crop (0, 3) + target (48, 80).
    """
    data = write_imagefolder(tmp_path / "images", rows=1).path
    pattern_image(0, size=(100, 56)).save(data / "image_000.png")
    recipe = write_recipe(
        tmp_path,
        sdxl_dir,
        None,
        "lora",
        data={"adapter": "imagefolder", "resolution": 64, "bucketing": True, "bucket_step": 8,
              "cache_latents": cache_latents, "options": {"source": str(data)}},
        sample={"prompts": []},
    )  # fmt: skip
    trainer = make_trainer(recipe)
    try:
        batch = Collate(trainer.components.tokenizers())([trainer.training_examples[0]])
        assert (batch.pixel_values is None) == cache_latents
        if not cache_latents:
            assert batch.pixel_values.shape == (1, 3, 48, 80)
        conditioning = trainer.inputs.conditioning(batch)
    finally:
        trainer.cleanup()
    assert conditioning.added["time_ids"].tolist() == [[56.0, 100.0, 0.0, 3.0, 48.0, 80.0]]
    assert conditioning.added["text_embeds"].shape == (1, TEXT_WIDTHS[1])  # the second encoder's pooled output
    assert conditioning.hidden_states.shape == (1, 77, sum(TEXT_WIDTHS))  # both encoders, concatenated


def test_sdxl_conditioning_is_what_the_diffusers_pipeline_encodes(sdxl_dir) -> None:
    """The family's text conditioning equals ``StableDiffusionXLPipeline.encode_prompt``'s."""
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection
    from adaptkit.training.batches import tokenize_all

    components = load_base_model(ModelSection(base=str(sdxl_dir)))
    pipeline = components.pipeline(components.noise_scheduler)
    embeds, _, pooled, _ = pipeline.encode_prompt("a ninja", do_classifier_free_guidance=False)
    ids = tokenize_all(components.tokenizers(), ["a ninja"])
    with torch.no_grad():
        ours = components.family.condition(list(components.text_encoders().values()), ids)
    torch.testing.assert_close(ours.hidden_states, embeds, atol=0, rtol=0)
    torch.testing.assert_close(ours.added["text_embeds"], pooled, atol=0, rtol=0)


def test_time_ids_follow_a_random_crop(tmp_path, sdxl_dir) -> None:
    """With random crops the time ids name the crop actually taken: the pixels are that window of the image."""
    from adaptkit.data.pipeline import ImagePipeline, to_tensor

    image = pattern_image(0, size=(100, 56))
    pipeline = ImagePipeline(48, center_crop=False)
    import random

    seen = set()
    for seed in range(12):
        out = pipeline(image, random.Random(seed))
        height, width, top, left, target_h, target_w = out.geometry
        assert (height, width, target_h, target_w) == (56, 100, 48, 48)
        resized = pipeline.resize(image)  # 86 × 48: only the left edge moves
        assert top == 0 and 0 <= left <= resized.width - 48
        torch.testing.assert_close(out.pixel_values, to_tensor(resized.crop((left, top, left + 48, top + 48))))
        seen.add(left)
    assert len(seen) > 3  # the crops differ, and so do their time ids
