"""Euler for flow-matching families: diffusers' ``FlowMatchEulerDiscreteScheduler``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from adaptkit.component import Options, Sampler

if TYPE_CHECKING:
    from diffusers import FlowMatchEulerDiscreteScheduler


class FlowEulerOptions(Options):
    """Flow-Euler options."""

    shift: float | None = Field(None, gt=0, description="Timestep shift; default: the base model scheduler's.")


class FlowEulerSampler(Sampler):
    """``FlowMatchEulerDiscreteScheduler`` from the base model's scheduler config (its shift unless set)."""

    name = "flow-euler"
    description = "Euler on the flow-matching ODE (diffusers FlowMatchEulerDiscreteScheduler); SD 3.x, Flux."
    objectives = ("flow",)
    Options: ClassVar[type[FlowEulerOptions]] = FlowEulerOptions
    options: FlowEulerOptions

    def build(self, scheduler_config: dict[str, Any]) -> "FlowMatchEulerDiscreteScheduler":
        """The flow-matching Euler scheduler, with ``shift`` when set."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        overrides = {"shift": self.options.shift} if self.options.shift is not None else {}
        return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config, **overrides)
