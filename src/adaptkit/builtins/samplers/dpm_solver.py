"""DPM-Solver(++) multistep, a good sampler at 20-25 steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from adaptkit.component import Options, Sampler

if TYPE_CHECKING:
    from diffusers import DPMSolverMultistepScheduler


#: The training scheduler of flow-matching bases, whose config asks for flow sigmas.
FLOW_SCHEDULER = "FlowMatchEulerDiscreteScheduler"


class DPMSolverOptions(Options):
    """DPM-Solver options (diffusers ``DPMSolverMultistepScheduler``)."""

    solver_order: Literal[1, 2, 3] = Field(2, description="Solver order (2 for guided sampling).")
    algorithm_type: Literal["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"] = Field(
        "dpmsolver++", description="Solver variant; the sde-* ones add noise at each step."
    )
    use_karras_sigmas: bool = Field(False, description="Karras noise schedule for the step sizes.")


class DPMSolverSampler(Sampler):
    """diffusers ``DPMSolverMultistepScheduler`` from the base model's scheduler config."""

    name = "dpm-solver"
    description = "DPM-Solver++ multistep (diffusers DPMSolverMultistepScheduler); flow sigmas for flow matching."
    objectives = ("ddpm", "flow")
    Options: ClassVar[type[DPMSolverOptions]] = DPMSolverOptions
    options: DPMSolverOptions

    def build(self, scheduler_config: dict[str, Any]) -> "DPMSolverMultistepScheduler":
        """``DPMSolverMultistepScheduler.from_config(scheduler_config, **options)``.

        The non-"++" algorithms cannot end on sigma 0 (diffusers refuses ``final_sigmas_type="zero"``
        for them), so they end on ``sigma_min``. A flow-matching base's config (its scheduler is a
        ``FlowMatchEulerDiscreteScheduler``) gets diffusers' flow sigmas, flow prediction and its shift.
        """
        from diffusers import DPMSolverMultistepScheduler

        overrides: dict[str, Any] = self.options.model_dump()
        if not self.options.algorithm_type.endswith("++"):
            overrides["final_sigmas_type"] = "sigma_min"
        if scheduler_config.get("_class_name") == FLOW_SCHEDULER:
            overrides.update(
                use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=scheduler_config.get("shift", 1.0)
            )
        return DPMSolverMultistepScheduler.from_config(scheduler_config, **overrides)
