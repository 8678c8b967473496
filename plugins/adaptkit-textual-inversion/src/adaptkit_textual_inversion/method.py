"""Textual inversion: one new token per CLIP text encoder, whose embedding is all that trains.

The token is added to each tokenizer and its embedding starts as the mean embedding of
``initializer``'s tokens; the encoders' embedding layers are wrapped so the new row trains alone
(:class:`~adaptkit_textual_inversion.embedding.ExtendedEmbedding`). The result folder holds the
embedding in both formats users load (:mod:`adaptkit_textual_inversion.files`): diffusers'
(``pipe.load_textual_inversion(folder / "learned_embeds.safetensors")``) and an A1111 / ComfyUI
embedding file (``embedding.safetensors``).

Works on families whose text encoders are all CLIP and whose pipeline loads textual inversions
(SD 1.x, 2.x, SDXL); others are refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from adaptkit import Method, Options, UserError
from pydantic import Field

from adaptkit_textual_inversion.embedding import ExtendedEmbedding
from adaptkit_textual_inversion.files import read_result, write_result

if TYPE_CHECKING:
    import torch
    from adaptkit import SDComponents
    from diffusers import DiffusionPipeline

#: Each text encoder's tokenizer, by pipeline attribute.
TOKENIZERS = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2"}


class TextualInversionOptions(Options):
    """Textual-inversion options."""

    token: str = Field(
        "<adaptkit-style>",
        min_length=1,
        description="The new token the captions use (put it there with data.caption_prefix) and prompts name.",
    )
    initializer: str = Field(
        "style", min_length=1, description="Word(s) whose mean token embedding the new one starts from."
    )


class TextualInversion(Method):
    """A new token's embedding in every CLIP text encoder; nothing else trains."""

    name = "textual-inversion"
    description = "Textual inversion: a new token's embedding only; saved for diffusers and A1111/ComfyUI."
    Options: ClassVar[type[TextualInversionOptions]] = TextualInversionOptions
    options: TextualInversionOptions
    trains_text_encoder = True  # gradients flow through the encoders, so their outputs are not cached

    def prepare(self, components: "SDComponents") -> list["torch.nn.Parameter"]:
        """Freeze everything, add the token to each tokenizer, return the new embeddings."""
        self._check_supported(components)
        for module in (components.denoiser, components.vae, *components.text_encoders().values()):
            module.requires_grad_(False)
        params = []
        for part, encoder in components.text_encoders().items():
            tokenizer = getattr(components, TOKENIZERS[part])
            embedding = encoder.get_input_embeddings()
            start = self._initial_vector(tokenizer, embedding)
            known = len(tokenizer(self.options.token, add_special_tokens=False).input_ids) == 1
            if (
                known
                or tokenizer.add_tokens([self.options.token]) != 1
                or len(tokenizer) - 1 != embedding.num_embeddings
            ):
                raise UserError(
                    f"method.options.token = {self.options.token!r}: the {part} tokenizer already has it as one "
                    "token (prompts using the word would change); choose a new token such as '<my-style>'"
                )
            extended = ExtendedEmbedding(embedding, start.unsqueeze(0))
            encoder.set_input_embeddings(extended)
            params.append(extended.vectors)
        return params

    def _check_supported(self, components: "SDComponents") -> None:
        """A one-line UserError unless every text encoder is CLIP and the pipeline loads textual inversions."""
        pipeline_class = components.family.pipeline_class()
        problem = None
        for part, encoder in components.text_encoders().items():
            if part not in TOKENIZERS or not type(encoder).__name__.startswith("CLIPText"):
                problem = f"its {part} is a {type(encoder).__name__}"
                break
        if problem is None and not hasattr(pipeline_class, "load_textual_inversion"):
            problem = f"{pipeline_class.__name__} cannot load textual inversions"
        if problem is not None:
            raise UserError(
                "method textual-inversion: trains CLIP token embeddings for pipelines that load them "
                f"(SD 1.x, 2.x, SDXL); model family {components.family.name}: {problem}"
            )

    def _initial_vector(self, tokenizer, embedding: "torch.nn.Embedding") -> "torch.Tensor":
        ids = tokenizer(self.options.initializer, add_special_tokens=False).input_ids
        if not ids:
            raise UserError(f"method.options.initializer = {self.options.initializer!r}: gives no tokens")
        return embedding.weight.detach()[ids].float().mean(dim=0)

    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """The learned embeddings in diffusers' and A1111's formats, and the token."""
        vectors = {}
        for part, encoder in components.text_encoders().items():
            embedding = encoder.get_input_embeddings()
            if not isinstance(embedding, ExtendedEmbedding):
                raise RuntimeError("textual-inversion.save: the text encoder has no new token (was prepare() called?)")
            vectors[part] = embedding.vectors.detach().float().cpu()
        write_result(Path(out_dir), self.options.token, vectors)

    def apply(self, pipeline: "DiffusionPipeline", saved_dir: Path) -> "DiffusionPipeline":
        """Load the saved embeddings with diffusers' own ``load_textual_inversion``."""
        token, files = read_result(Path(saved_dir))
        for part, path in files.items():
            encoder, tokenizer = getattr(pipeline, part, None), getattr(pipeline, TOKENIZERS.get(part, ""), None)
            if encoder is None or tokenizer is None:
                raise UserError(f"{path}: holds an embedding for {part}, which this model does not have")
            pipeline.load_textual_inversion(str(path), token=token, text_encoder=encoder, tokenizer=tokenizer)
        return pipeline
