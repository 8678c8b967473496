"""Tiny CLIP and DINOv2 models built from config and saved with ``save_pretrained`` (for tests).

Random weights, seeded: the folders load through the same ``from_pretrained`` path as the real
``openai/clip-vit-large-patch14`` and ``facebook/dinov2-base``, with PIL image processors.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE = 32


def save_tiny_clip(directory: Path, seed: int = 0, image_size: int = IMAGE_SIZE) -> Path:
    """Save a tiny ``CLIPModel`` (with tokenizer and image processor) into ``directory``; return it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from adaptkit.testing.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=image_size, patch_size=8,
        ),
        projection_dim=16,
    )  # fmt: skip
    directory = Path(directory)
    CLIPModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor.save_pretrained(directory)
    return directory


def save_tiny_dino(directory: Path, seed: int = 0, image_size: int = IMAGE_SIZE) -> Path:
    """Save a tiny ``Dinov2Model`` (with its PIL image processor) into ``directory``; return it."""
    import torch
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
        image_size=image_size, patch_size=8,
    )  # fmt: skip
    directory = Path(directory)
    Dinov2Model(config).save_pretrained(directory)
    BitImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(directory)
    return directory


__all__ = ["save_tiny_clip", "save_tiny_dino", "IMAGE_SIZE"]
