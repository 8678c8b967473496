"""DDIM, deterministic at ``eta = 0``."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from adaptkit.component import Options, Sampler

if TYPE_CHECKING:
    import torch
    from diffusers import DDIMScheduler


class DDIMOptions(Options):
    """DDIM options."""

    eta: float = Field(0.0, ge=0, le=1, description="Noise weight per step: 0 is deterministic DDIM, 1 is DDPM-like.")
    timestep_spacing: Literal["leading", "trailing", "linspace"] | None = Field(
        None, description="How inference timesteps are spread; default: the base model's."
    )


class DDIMSampler(Sampler):
    """diffusers ``DDIMScheduler`` from the base model's scheduler config, with a configured ``eta``."""

    name = "ddim"
    description = "DDIM (diffusers DDIMScheduler); eta sets the noise per step."
    Options: ClassVar[type[DDIMOptions]] = DDIMOptions
    options: DDIMOptions

    def build(self, scheduler_config: dict[str, Any]) -> "DDIMScheduler":
        """A DDIM scheduler whose ``config.eta`` is used by every ``step``."""
        overrides: dict[str, Any] = {}
        if self.options.timestep_spacing is not None:
            overrides["timestep_spacing"] = self.options.timestep_spacing
        scheduler = _eta_ddim_class().from_config(scheduler_config, **overrides)
        scheduler.register_to_config(eta=self.options.eta)
        return scheduler


@cache
def _eta_ddim_class() -> type["DDIMScheduler"]:
    """``DDIMScheduler`` whose ``step`` takes ``eta`` from its config.

    Pipelines pass their own ``eta`` (default 0) to ``step`` when its signature has one, so this
    ``step`` leaves ``eta`` out of its signature and the sampler's option is what counts.
    """
    from diffusers import DDIMScheduler

    class EtaDDIMScheduler(DDIMScheduler):
        """DDIM with ``eta`` read from ``config.eta``."""

        def step(  # type: ignore[override]
            self,
            model_output: "torch.Tensor",
            timestep: int,
            sample: "torch.Tensor",
            generator: "torch.Generator | None" = None,
            return_dict: bool = True,
            **kwargs: Any,
        ) -> Any:
            kwargs.setdefault("eta", self.config.get("eta", 0.0))
            return super().step(model_output, timestep, sample, generator=generator, return_dict=return_dict, **kwargs)

    return EtaDDIMScheduler
