"""Building the recipe's optimizer, learning-rate schedules, and skipping non-finite steps.

:class:`NonFiniteGuard` skips an optimizer step whose loss is not finite without a per-step
host synchronisation: the flag stays on the device and torch's fused AdamW reads it as its
``found_inf`` attribute (the way ``GradScaler`` skips steps), leaving weights and optimizer state
untouched. The counters stay on the device too and are read where the loss is read anyway,
every ``train.log_every`` steps. Optimizers without ``found_inf`` (bitsandbytes' 8-bit AdamW)
fall back to reading the flag on the host once per step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from adaptkit.component import Optimizer
from adaptkit.errors import UserError
from adaptkit.recipe import TrainSection


def build_optimizer(
    params: Iterable[torch.nn.Parameter], train: TrainSection, optimizer: Optimizer
) -> torch.optim.Optimizer:
    """The recipe's ``optimizer`` component built over ``params`` (refused in one line when there are none)."""
    params = list(params)
    if not params:
        raise UserError("method: no trainable parameters (check method.options.target_modules)")
    return optimizer.build(params, train)


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` (or the one an accelerate wrapper holds) honours a ``found_inf`` tensor."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return isinstance(inner, torch.optim.Adam | torch.optim.AdamW) and all(
        group.get("fused") for group in inner.param_groups
    )


class NonFiniteGuard:
    """Skips and counts optimizer steps with a non-finite loss; no host sync with a fused optimizer.

    Call :meth:`step` in place of ``optimizer.step()``; it returns the skip flag (a 0-d float
    tensor, 1.0 = skipped) for the EMA. :meth:`read` returns the window's mean finite loss and the
    counters, and is the only place they reach the host.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, num_processes: int = 1) -> None:
        self.on_device = skips_on_device(optimizer)
        self.num_processes = num_processes
        # loss sum (finite steps), finite steps, skipped in all, current consecutive run, longest run
        self.stats = torch.zeros(5, device=device)

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, reduce=None) -> torch.Tensor:
        """Step ``optimizer`` unless ``loss`` is non-finite (on any process: ``reduce`` is a max all-reduce)."""
        found = (~torch.isfinite(loss)).float()
        if self.num_processes > 1 and reduce is not None:
            found = reduce(found)
        stats = self.stats
        stats[0] += torch.where(found.bool(), torch.zeros_like(loss), loss)
        stats[1] += 1 - found
        stats[2] += found
        stats[3] = (stats[3] + found) * found
        stats[4] = torch.maximum(stats[4], stats[3])
        scaler = getattr(optimizer, "scaler", None)
        if self.on_device and scaler is None:
            inner = getattr(optimizer, "optimizer", optimizer)
            inner.found_inf = found  # read by the fused kernel: a skipped step changes nothing
            try:
                optimizer.step()
            finally:
                del inner.found_inf
        elif self.on_device or not bool(found):  # a GradScaler skips non-finite steps itself; else: host sync
            optimizer.step()
        return found

    def read(self) -> tuple[float, int, int]:
        """(mean finite loss since the last read, skipped steps in all, longest consecutive run since the last read)."""
        loss_sum, finite, skipped, _, longest = self.stats.tolist()
        self.stats[0] = 0
        self.stats[1] = 0
        self.stats[4] = self.stats[3]
        return (loss_sum / finite if finite else float("nan")), int(skipped), int(longest)

    def state_dict(self) -> dict[str, int]:
        return {"skipped": int(self.stats[2].item()), "consecutive": int(self.stats[3].item())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.stats[2] = state.get("skipped", 0)
        self.stats[3] = state.get("consecutive", 0)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, train: TrainSection):
    """diffusers' ``get_scheduler`` by name, stepped once per optimizer step."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        train.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=train.lr_warmup_steps,
        num_training_steps=train.steps,
    )


def nonfinite_stop(longest: int, skipped: int, step: int, limit: int, run) -> UserError:
    """The error that stops a run after ``longest`` consecutive non-finite steps, naming what is kept."""
    from adaptkit.training.checkpoint import newest_complete

    kept = newest_complete(run.dir.checkpoints)
    kept_text = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint had been written yet"
    return UserError(
        f"train.max_nonfinite_steps = {limit}: {longest} consecutive steps had a non-finite loss "
        f"({skipped} skipped in all, stopped at step {step}); {kept_text}; lower train.learning_rate "
        "or check the data, then resume with --resume"
    )
