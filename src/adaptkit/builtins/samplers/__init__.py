"""Built-in samplers (registered through ``register_samplers``)."""

from __future__ import annotations

from collections.abc import Callable

from adaptkit.builtins.samplers.ddim import DDIMSampler
from adaptkit.builtins.samplers.dpm_solver import DPMSolverSampler
from adaptkit.builtins.samplers.flow_euler import FlowEulerSampler
from adaptkit.builtins.samplers.pndm import PNDMSampler
from adaptkit.hookspecs import hookimpl

__all__ = ["DDIMSampler", "DPMSolverSampler", "FlowEulerSampler", "PNDMSampler", "register_samplers"]


@hookimpl
def register_samplers(register: Callable[[type], None]) -> None:
    """Register the built-in samplers: ddim, pndm, dpm-solver (DDPM families) and flow-euler (flow matching)."""
    register(DDIMSampler)
    register(PNDMSampler)
    register(DPMSolverSampler)
    register(FlowEulerSampler)
