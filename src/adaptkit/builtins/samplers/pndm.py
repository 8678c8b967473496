"""PNDM (pseudo numerical methods), Stable Diffusion v1's original sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from adaptkit.component import Options, Sampler

if TYPE_CHECKING:
    from diffusers import PNDMScheduler


class PNDMOptions(Options):
    """PNDM options."""

    skip_prk_steps: bool = Field(True, description="Skip the Runge-Kutta warm-up steps (as SD v1 does).")


class PNDMSampler(Sampler):
    """diffusers ``PNDMScheduler`` from the base model's scheduler config."""

    name = "pndm"
    description = "PNDM (diffusers PNDMScheduler), Stable Diffusion v1's default."
    Options: ClassVar[type[PNDMOptions]] = PNDMOptions
    options: PNDMOptions

    def build(self, scheduler_config: dict[str, Any]) -> "PNDMScheduler":
        """``PNDMScheduler.from_config(scheduler_config, skip_prk_steps=...)``."""
        from diffusers import PNDMScheduler

        return PNDMScheduler.from_config(scheduler_config, skip_prk_steps=self.options.skip_prk_steps)
