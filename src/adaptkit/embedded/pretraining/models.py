"""Architecture of the embedded tiny Stable Diffusion model (configs and assembly)."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

IMAGE_SIZE = 64
LATENT_SIZE = 16
LATENT_CHANNELS = 4
TEXT_DIM = 128


def build_vae() -> AutoencoderKL:
    """3-level KL autoencoder: 64×64×3 ↔ 16×16×4 (4× downsampling)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
    )


def build_unet() -> UNet2DConditionModel:
    """UNet in the SD v1 block layout (4 levels, layers_per_block=2), small widths.

    Cross-attention at 16×16, 8×8 and 4×4 latents; ~4.4 M parameters.
    """
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(64, 64, 64, 64),
        layers_per_block=2,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=32,
    )


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """Small random-init CLIP text transformer sized to the tiny vocabulary."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=4 * TEXT_DIM,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=TEXT_DIM,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_scheduler() -> DDPMScheduler:
    """Training noise schedule (SD v1 betas, epsilon prediction, trailing spacing)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )


def assemble_pipeline(
    vae: AutoencoderKL,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    scheduler: DDPMScheduler | None = None,
) -> StableDiffusionPipeline:
    """Wrap the parts as a :class:`StableDiffusionPipeline` (no safety checker, no progress bar)."""
    from adaptkit.builtins.families.sd1 import assemble_pipeline as sd1_pipeline

    return sd1_pipeline(vae, text_encoder, tokenizer, unet, scheduler or build_scheduler())


def with_sampler(pipe: StableDiffusionPipeline) -> StableDiffusionPipeline:
    """Swap in the DPMSolverMultistep sampler used by evaluation and the demo."""
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    return pipe


def save_pipeline(pipe: StableDiffusionPipeline, directory: str | Path) -> None:
    """Save in the diffusers folder layout with safetensors weights."""
    pipe.save_pretrained(str(directory), safe_serialization=True)


def load_pipeline(directory: str | Path) -> StableDiffusionPipeline:
    """Load the embedded model offline from ``directory``."""
    return StableDiffusionPipeline.from_pretrained(str(directory), local_files_only=True)
