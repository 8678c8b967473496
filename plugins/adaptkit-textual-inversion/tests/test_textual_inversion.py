"""The textual-inversion method: adaptkit's method contract (with the token in the prompts), then
what is its own: only the new embedding trains, diffusers' ``load_textual_inversion`` reads both saved
formats to adaptkit's images (SD 1.x and SDXL), a run resumes bit-exactly, and unsupported families
and taken tokens are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from adaptkit import ModelSection, UserError, load_base_model
from adaptkit.testing.contracts import MethodContract
from adaptkit.testing.family_runs import (
    adapter_tensors,
    adaptkit_images,
    generate,
    single_file_pipeline,
    train,
    write_family_recipe,
)
from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline
from safetensors.torch import load_file

from adaptkit_textual_inversion import TextualInversion

TOKEN = "<tiny-style>"


class TestTextualInversion(MethodContract):
    component = TextualInversion
    options = {"token": TOKEN, "initializer": "cartoon"}
    prompt_words = TOKEN


def ti_run(folder: Path, base: Path, name: str, *overrides: str, resume: str | None = None) -> Path:
    """The contract's 4-step recipe with textual inversion, the token put before every caption."""
    recipe = folder / f"{name}.toml"
    if not recipe.exists():
        write_family_recipe(folder, base, name, method="textual-inversion", token=TOKEN, initializer="ninja")
    return train(recipe, f"data.caption_prefix={TOKEN}", "train.learning_rate=5e-2", *overrides, resume=resume)


@pytest.fixture(scope="module")
def sdxl_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny")


def ti_pipeline(pipeline_class: type, base: Path, run_dir: Path, a1111: bool = False):
    """``from_pretrained(base)`` plus the run's embedding through diffusers' own loader (either file)."""
    pipeline = single_file_pipeline(pipeline_class, base, None, base)
    adapter = run_dir / "adapter"
    if not a1111:
        pipeline.load_textual_inversion(str(adapter / "learned_embeds.safetensors"), token=TOKEN)
        if (adapter / "learned_embeds_2.safetensors").is_file():
            pipeline.load_textual_inversion(
                str(adapter / "learned_embeds_2.safetensors"),
                token=TOKEN,
                text_encoder=pipeline.text_encoder_2,
                tokenizer=pipeline.tokenizer_2,
            )
        return pipeline
    embedding = load_file(str(adapter / "embedding.safetensors"))
    if "emb_params" in embedding:
        pipeline.load_textual_inversion(str(adapter / "embedding.safetensors"), token=TOKEN)
    else:  # SDXL: one tensor per encoder, as diffusers' docs load A1111 SDXL embeddings
        pipeline.load_textual_inversion(embedding["clip_l"], token=TOKEN)
        pipeline.load_textual_inversion(
            embedding["clip_g"], token=TOKEN, text_encoder=pipeline.text_encoder_2, tokenizer=pipeline.tokenizer_2
        )
    return pipeline


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_diffusers_loads_both_files_to_adaptkits_images(
    family: str, tmp_path: Path, tiny_model_dir: Path, sdxl_base: Path
) -> None:
    """Diffusers' loader, given either saved file, samples adaptkit's images of prompts with the token."""
    base = tiny_model_dir if family == "sd1" else sdxl_base
    run_dir = ti_run(tmp_path, base, "ti")
    state = adapter_tensors(run_dir)
    saved = {path.name for path in (run_dir / "adapter").iterdir()}
    expected = {"embedding.safetensors", "learned_embeds.safetensors", "textual_inversion.json"}
    assert expected | ({"learned_embeds_2.safetensors"} if family == "sdxl" else set()) <= saved
    assert all(value.shape[0] == 1 for key, value in state.items() if key.startswith("learned_embeds"))
    prompts = [f"{TOKEN} a ninja", f"{TOKEN} a ninja", f"a {TOKEN} cat", f"a {TOKEN} cat"]
    ours = adaptkit_images(base, run_dir, prompts)
    pipeline_class = load_base_model(ModelSection(base=str(base))).family.pipeline_class()
    for a1111 in (False, True):
        theirs = generate(ti_pipeline(pipeline_class, base, run_dir, a1111), prompts)
        assert (ours - theirs).abs().max() <= 1e-4, (a1111, (ours - theirs).abs().max())
    assert (ours - adaptkit_images(base, None, prompts)).abs().max() > 1e-3  # the token's embedding matters


def test_only_the_new_embedding_trains(tmp_path: Path, tiny_model_dir: Path) -> None:
    from adaptkit.testing.tiny_steps import load_tiny, train_steps

    components = load_tiny(tiny_model_dir)
    before = {k: v.clone() for k, v in components.text_encoder.state_dict().items()}
    unet = {k: v.clone() for k, v in components.unet.state_dict().items()}
    method = TextualInversion(TextualInversion.Options(token=TOKEN))
    params = method.prepare(components)
    train_steps(components, params, 3, 1e-1, f"a {TOKEN} dog")
    after = components.text_encoder.state_dict()
    changed = [k for k in after if k in before and not torch.equal(before[k], after[k])]
    assert changed == [] and all(torch.equal(unet[k], v) for k, v in components.unet.state_dict().items())
    assert len(params) == 1 and params[0].shape == (1, components.text_encoder.config.hidden_size)


def test_resume_is_bit_exact(tmp_path: Path, tiny_model_dir: Path) -> None:
    straight = adapter_tensors(ti_run(tmp_path, tiny_model_dir, "straight"))
    ti_run(tmp_path, tiny_model_dir, "stopped", "train.steps=2")
    resumed = adapter_tensors(ti_run(tmp_path, tiny_model_dir, "stopped", resume="latest"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_token_the_tokenizer_has_and_a_t5_family_are_one_line(tiny_model_dir: Path) -> None:
    from adaptkit.testing.bases import TestingModels
    from adaptkit.testing.tiny_steps import load_tiny

    with pytest.raises(UserError, match=r"method.options.token = 'cat': the text_encoder tokenizer already has it"):
        TextualInversion(TextualInversion.Options(token="cat")).prepare(load_tiny(tiny_model_dir))
    sd3 = load_base_model(ModelSection(base=str(TestingModels().locate("tiny-sd3"))))
    with pytest.raises(UserError) as error:
        TextualInversion().prepare(sd3)
    assert error.value.lines == [
        "method textual-inversion: trains CLIP token embeddings for pipelines that load them (SD 1.x, 2.x, SDXL); "
        "model family sd3: its text_encoder_3 is a T5EncoderModel"
    ]
