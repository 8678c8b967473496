"""EMA of the trainable weights (diffusers' ``EMAModel``), optionally offloaded to CPU memory.

Works for any list of parameters, so for ``full`` and for the adapter weights of LoRA/LoHa alike.
With ``offload``, the shadow weights live in CPU memory and visit the training device only
for the update (diffusers' ``--offload_ema`` pattern), so accelerator memory for EMA is zero
between updates.

Sharded runs: under FSDP each process averages its own shard (the shadows are DTensors) and a
checkpoint gathers them whole. Under DeepSpeed ZeRO-3, whose weights are partitioned, every process
keeps whole shadows (in CPU memory with ``offload``) and each update gathers the weights first, as
diffusers' ``EMAModel.step`` does under ZeRO-3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from diffusers.training_utils import EMAModel

from adaptkit.errors import UserError
from adaptkit.recipe import EmaSection
from adaptkit.training.sharding import whole
from adaptkit.training.zero import full_parameters, full_shape


class EmaWeights:
    """The moving average of ``params``."""

    def __init__(self, params: Sequence[torch.nn.Parameter], config: EmaSection) -> None:
        self.params = list(params)
        self.offload = config.offload
        self.device = self.params[0].device if self.params else torch.device("cpu")
        with full_parameters(self.params):  # ZeRO-3: clone the whole weights
            self.model = EMAModel(self.params, decay=config.decay, foreach=config.foreach)
        if self.offload:
            self.model.to("cpu")
            if torch.cuda.is_available():
                self.model.pin_memory()

    @torch.no_grad()
    def step(self, skipped: torch.Tensor | None = None) -> None:
        """One EMA update from the current training weights.

        ``skipped`` (a 0-d tensor, 1.0 = the optimizer step was skipped) masks the update on the
        device, without a host sync: a skipped step is not averaged in. Its decay schedule still
        counts the step (diffusers' ``optimization_step`` is a host integer).
        """
        with full_parameters(self.params):  # ZeRO-3: the whole weights, for this update only
            if self.offload and self.device.type != "cpu":
                self.model.to(self.device, non_blocking=True)
                self._update(skipped)
                self.model.to("cpu")  # blocking: a checkpoint may read the shadow weights next
            else:
                self._update(skipped)

    def _update(self, skipped: torch.Tensor | None) -> None:
        if skipped is None:
            self.model.step(self.params)
            return
        model = self.model
        model.optimization_step += 1
        model.cur_decay_value = decay = model.get_decay(model.optimization_step)
        weight = (1 - skipped.to(model.shadow_params[0].device)) * (1 - decay)
        pairs = list(zip(model.shadow_params, self.params))
        moving = [(s, p) for s, p in pairs if p.requires_grad]
        for shadow, param in pairs:
            if not param.requires_grad:
                shadow.copy_(param)
        if not moving:
            return
        shadows, params = [s for s, _ in moving], [p for _, p in moving]
        if model.foreach:  # ema.foreach: one fused kernel per op over every tensor
            steps = torch._foreach_sub(shadows, params)
            torch._foreach_mul_(steps, weight)
            torch._foreach_sub_(shadows, steps)
        else:
            for shadow, param in moving:
                shadow.sub_((shadow - param) * weight)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block, the parameters hold the EMA weights; the training weights come back after.

        Under ZeRO-3 the caller makes the parameters whole for the block (``full_parameters(...,
        modify=True)``, as :meth:`adaptkit.training.writer.RunWriter.saved_weights` does).
        """
        self.model.store(self.params)
        self.model.copy_to(self.params)
        try:
            yield
        finally:
            self.model.restore(self.params)

    def state_dict(self) -> dict:
        """The EMA's state with whole shadow weights on the CPU (under FSDP: gathered from every process,
        so every process must call it)."""
        state = dict(self.model.state_dict())
        state["shadow_params"] = [whole(p).detach().cpu() for p in state["shadow_params"]]
        return state

    def load_state_dict(self, state: dict) -> None:
        """Load a :meth:`state_dict`; under FSDP each process keeps its shard of every shadow weight."""
        sharded = [getattr(p, "device_mesh", None) is not None for p in self.model.shadow_params]
        if any(sharded):
            from torch.distributed.tensor import distribute_tensor

            state = dict(state)
            state["shadow_params"] = [
                distribute_tensor(full.to(mine.dtype), mine.device_mesh, mine.placements) if shard else full
                for full, mine, shard in zip(state["shadow_params"], self.model.shadow_params, sharded)
            ]
        self.model.load_state_dict(state)
        target = "cpu" if self.offload else self.device
        self.model.to(target)


def check_ema_state(state: dict | None, params: Sequence[torch.nn.Parameter], source: str) -> dict:
    """``state`` (a checkpoint's saved EMA) if it fits ``params``, else a UserError naming ``source``."""
    if state is None:
        raise UserError(f"{source}: the checkpoint has no EMA state but ema.enabled = true")
    shadows = state.get("shadow_params") or []
    if [tuple(s.shape) for s in shadows] != [full_shape(p) for p in params]:
        raise UserError(
            f"{source}: the checkpoint's EMA holds {len(shadows)} tensors that do not match the "
            f"{len(params)} trainable weights of this recipe's method; was it saved by another recipe?"
        )
    return state


@torch.no_grad()
def copy_ema_weights(state: dict | None, params: Sequence[torch.nn.Parameter], source: str) -> None:
    """Overwrite ``params`` with a checkpoint's EMA weights, to infer from them (no second copy is made)."""
    for param, shadow in zip(params, check_ema_state(state, params, source)["shadow_params"]):
        param.copy_(shadow.to(param.device, param.dtype))
