"""``flux``: Flux.1 (dev and schnell) — a ``FluxTransformer2DModel`` trained with rectified flow.

What ``FluxPipeline`` computes, so training sees what sampling will:

- conditioning: CLIP-L's pooled output and T5's 512 token states (``encode_prompt``);
- the transformer takes the latents packed into 2x2 patches with their positions (``img_ids``),
  zero text positions (``txt_ids``), the timestep divided by 1000 and, on Flux.1-dev (a
  guidance-distilled transformer, ``guidance_embeds``), a guidance value: ``[model.options]
  guidance``, 3.5 by default as in diffusers' and sd-scripts' Flux trainers;
- σ are shifted by image size (``use_dynamic_shifting``: μ from the scheduler's ``base_shift`` /
  ``max_shift`` over the packed sequence length), as the pipeline shifts its sampling σ and as
  SimpleTuner and ai-toolkit train; ``resolution_shift = false`` trains on the unshifted σ, as
  diffusers' example script does.

The kohya layout (:mod:`adaptkit_flux.kohya_layout`) is sd-scripts' and ComfyUI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from adaptkit import Conditioning, KohyaModule, ModelFamily, Options
from pydantic import Field

from adaptkit_flux.kohya_layout import kohya_modules

if TYPE_CHECKING:
    import torch
    from adaptkit import SDComponents
    from diffusers import SchedulerMixin

#: T5's token window in ``FluxPipeline`` (its ``max_sequence_length`` default, Flux.1-dev's).
T5_TOKENS = 512


class FluxOptions(Options):
    """``[model.options]`` of a Flux base."""

    guidance: float = Field(
        3.5, ge=0, description="Guidance value a guidance-distilled transformer (Flux.1-dev) trains with."
    )
    resolution_shift: bool = Field(
        True, description="Shift the training sigmas by image size as sampling does (false: unshifted)."
    )


class Flux(ModelFamily):
    """Flux.1: ``FluxPipeline`` with CLIP-L (pooled) and T5, packed latents, flow matching."""

    name = "flux"
    description = "Flux.1 dev/schnell (FluxTransformer2DModel, CLIP-L + T5, flow matching; from adaptkit-flux)."
    model_spec = ("flux1", "flux-1-dev")
    fsdp_blocks = ("FluxTransformerBlock", "FluxSingleTransformerBlock")
    Options: ClassVar[type[FluxOptions]] = FluxOptions
    options: FluxOptions
    pipeline_class_names = ("FluxPipeline",)
    objective = "flow"
    native_resolution = 1024
    lora_text_encoders = ("text_encoder",)  # CLIP-L, as diffusers' and sd-scripts' Flux LoRAs

    def __init__(self, options: FluxOptions | None = None) -> None:
        super().__init__(options)
        # read from the loaded base by bind()
        self.guidance_embeds = True
        self.vae_scale = 8
        self.shift_config: dict[str, Any] = {}

    def pipeline_class(self) -> type:
        from diffusers import FluxPipeline

        return FluxPipeline

    def training_scheduler(self, scheduler_config: dict[str, Any]) -> "SchedulerMixin":
        """The base's ``FlowMatchEulerDiscreteScheduler`` (the table the flow-matching σ are drawn from)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)

    def bind(self, components: "SDComponents") -> None:
        """Read what the transformer, VAE and scheduler fix (guidance embedding, VAE scale, dynamic
        shift), and tokenize for T5 with the pipeline's 512-token window."""
        self.guidance_embeds = bool(components.denoiser.config.get("guidance_embeds", False))
        self.vae_scale = 2 ** (len(components.vae.config.block_out_channels) - 1)
        self.shift_config = dict(components.scheduler_config)
        components.tokenizer_2.model_max_length = T5_TOKENS

    def condition(
        self, text_encoders: Sequence["torch.nn.Module"], input_ids: Sequence["torch.Tensor"]
    ) -> Conditioning:
        """T5's token states; CLIP-L's pooled output."""
        pooled = text_encoders[0](input_ids[0], output_hidden_states=False).pooler_output
        states = text_encoders[1](input_ids[1], output_hidden_states=False)[0]
        return Conditioning(states, {"pooled_projections": pooled.to(states.dtype)})

    def predict(
        self, denoiser: "torch.nn.Module", noisy: "torch.Tensor", timesteps: "torch.Tensor", conditioning: Conditioning
    ) -> "torch.Tensor":
        """The transformer's velocity for (batch, channels, h, w) latents, packed and unpacked as the
        pipeline does (its static helpers)."""
        import torch
        from diffusers import FluxPipeline

        batch, channels, height, width = noisy.shape
        packed = FluxPipeline._pack_latents(noisy, batch, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, noisy.device, noisy.dtype)
        states = conditioning.hidden_states
        text_ids = torch.zeros(states.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        guidance = None
        if self.guidance_embeds:
            guidance = torch.full((batch,), self.options.guidance, device=noisy.device, dtype=torch.float32)
        velocity = denoiser(
            hidden_states=packed,
            timestep=timesteps.to(noisy.dtype) / 1000,
            guidance=guidance,
            pooled_projections=(conditioning.added or {})["pooled_projections"],
            encoder_hidden_states=states,
            txt_ids=text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        return FluxPipeline._unpack_latents(velocity, height * self.vae_scale, width * self.vae_scale, self.vae_scale)

    def shift_mu(self, latents: "torch.Tensor") -> float | None:
        """μ for the packed sequence length of ``latents`` (diffusers' ``calculate_shift`` on the
        scheduler's settings), when the scheduler shifts by resolution and the option is on."""
        if not (self.options.resolution_shift and self.shift_config.get("use_dynamic_shifting")):
            return None
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        tokens = (latents.shape[-2] // 2) * (latents.shape[-1] // 2)
        c = self.shift_config
        return calculate_shift(
            tokens,
            c.get("base_image_seq_len", 256),
            c.get("max_image_seq_len", 4096),
            c.get("base_shift", 0.5),
            c.get("max_shift", 1.15),
        )

    def kohya_modules(self, denoiser_config: dict[str, Any]) -> list[KohyaModule]:
        """sd-scripts' Flux names (``double_blocks_0_img_attn_qkv``…), q/k/v (and MLP) fused."""
        return kohya_modules(denoiser_config)

    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A ``FluxPipeline`` of the components, no progress bar."""
        c = components
        return flux_pipeline(
            scheduler=scheduler,
            vae=c.vae,
            text_encoder=c.text_encoder,
            tokenizer=c.tokenizer,
            text_encoder_2=c.text_encoder_2,
            tokenizer_2=c.tokenizer_2,
            transformer=c.denoiser,
        )


def flux_pipeline(**modules: Any) -> Any:
    """A ``FluxPipeline`` of ``modules`` (scheduler, vae, CLIP and T5 with their tokenizers, transformer),
    no progress bar."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline(**modules)
    pipe.set_progress_bar_config(disable=True)
    return pipe
