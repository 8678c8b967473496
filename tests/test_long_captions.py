"""Long captions in chunks (``[data] long_captions = "chunk"``): windows of 75 tokens with their own
start/end tokens, encoded separately and concatenated; the first window is exactly the truncated
caption's; SDXL's pooled input from the first; a run trains with them cached; T5 families refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.errors import UserError
from adaptkit.recipe import DataSection
from adaptkit.testing.tiny_model import PROMPT_WORDS
from adaptkit.testing.tiny_steps import load_tiny
from adaptkit.training.batches import tokenize_all
from adaptkit.training.long_captions import check_chunking, condition_chunked, tokenize_chunked

LONG = " ".join((PROMPT_WORDS * 20)[:260])  # 260 one-token words: more than three windows


def test_windows_have_their_own_start_end_and_padding(tiny_model_dir: Path) -> None:
    tokenizer = load_tiny(tiny_model_dir).tokenizer
    ids = tokenize_chunked(tokenizer, [LONG, "a red star"], chunks=3)
    assert ids.shape == (2, 3 * 77)
    words = tokenizer(LONG, add_special_tokens=False).input_ids
    windows = ids[0].view(3, 77)
    for i, window in enumerate(windows):
        assert window[0] == tokenizer.bos_token_id and window[76] == tokenizer.eos_token_id
        assert window[1:76].tolist() == words[i * 75 : (i + 1) * 75]  # tokens after 225 are dropped
    short = ids[1].view(3, 77)
    assert short[1, 0] == tokenizer.bos_token_id and short[1, 1] == tokenizer.eos_token_id


def test_the_first_window_is_the_truncated_caption_and_the_rest_follow(tiny_model_dir: Path) -> None:
    components = load_tiny(tiny_model_dir)
    encoders = list(components.text_encoders().values())
    family = components.family
    with torch.no_grad():
        chunked = condition_chunked(family, encoders, tokenize_all(components.tokenizers(), [LONG], 3), 3)
        truncated = family.condition(encoders, tokenize_all(components.tokenizers(), [LONG]))
    assert chunked.hidden_states.shape[1] == 3 * 77
    torch.testing.assert_close(chunked.hidden_states[:, :77], truncated.hidden_states)
    assert not torch.allclose(chunked.hidden_states[:, 77:154], truncated.hidden_states)


def test_sdxl_takes_its_pooled_input_from_the_first_window(tmp_path: Path) -> None:
    from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

    components = load_tiny(save_tiny_sdxl_pipeline(tmp_path / "sdxl"))
    encoders = list(components.text_encoders().values())
    with torch.no_grad():
        chunked = condition_chunked(components.family, encoders, tokenize_all(components.tokenizers(), [LONG], 2), 2)
        plain = components.family.condition(encoders, tokenize_all(components.tokenizers(), [LONG]))
    assert chunked.hidden_states.shape[1] == 2 * 77
    torch.testing.assert_close(chunked.added["text_embeds"], plain.added["text_embeds"])


def test_a_run_trains_on_chunked_cached_captions(tmp_path: Path, tiny_model_dir: Path) -> None:
    from adaptkit.testing.datasets import write_naruto

    from training_helpers import run, write_recipe

    data_dir = write_naruto(tmp_path / "naruto", rows=2).path
    data = {"long_captions": "chunk", "max_caption_tokens": 150, "caption_prefix": LONG}
    trainer, result = run(write_recipe(tmp_path, tiny_model_dir, data_dir, data=data, sample={"prompts": []}))
    assert trainer.text_cache is not None
    assert {tuple(h.shape) for h in trainer.text_cache.cached().values()} == {(154, 32)}
    assert result.truncated_captions > 0  # 260 words: more than the 150 kept


def test_a_t5_family_is_refused_in_one_line() -> None:
    from adaptkit.models import load_base_model
    from adaptkit.recipe import ModelSection
    from adaptkit.testing.bases import TestingModels

    sd3 = load_base_model(ModelSection(base=str(TestingModels().locate("tiny-sd3"))))
    with pytest.raises(UserError) as error:
        check_chunking(DataSection(adapter="x", long_captions="chunk"), sd3)
    assert error.value.lines == [
        "data.long_captions = 'chunk': model family sd3's text_encoder_3 is a T5EncoderModel, which takes its own "
        "long window; use long_captions = 'truncate'"
    ]
