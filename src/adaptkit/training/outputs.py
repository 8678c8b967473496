"""What a training run writes: checkpoints, the method's result and sample grids.

A mixin of :class:`adaptkit.trainer.Trainer`, kept apart so the trainer module holds only setup
and the loop. It reads the trainer's ``accelerator``, ``recipe``, ``run``, ``method``,
``components``, ``optimizer``, ``lr_scheduler``, ``ema``, ``guard``, ``hook``, ``resolved`` and
``base_rows``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from adaptkit import checkpoint as ckpt
from adaptkit.run import package_versions, recipe_hash, recipe_identity
from adaptkit.sampling import SampleSpec, generate, save_before_after, save_grid
from adaptkit.training.rng import get_rng_state


class TrainerOutputs:
    """Checkpoint, result and sample-grid writing for the trainer (main process only)."""

    def _weights_to_save(self):
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def save_checkpoint(self, step: int) -> Path | None:
        """Write a complete checkpoint for ``step`` (main process only) and apply retention."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        state = {
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
            "rng": get_rng_state(),
            "nonfinite": self.guard.state_dict(),
        }
        manifest = {
            "recipe_hash": recipe_hash(self.recipe),
            "identity": recipe_identity(self.recipe),
            "versions": package_versions(),
            "method": self.method.name,
        }
        ckpt.discard_after(self.run.checkpoints_dir, step)  # a resumed run's abandoned future
        path = ckpt.write_checkpoint(
            self.run.checkpoints_dir, step, self.method.trainable_state_dict(self.components), state, manifest
        )
        ckpt.apply_retention(self.run.checkpoints_dir, self.recipe.checkpoint.keep)
        self.hook.on_checkpoint(run=self.run, path=path)
        return path

    def save_result(self) -> None:
        """The method's output in ``adapter/`` — with the EMA weights when EMA is on."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        with self._weights_to_save():
            self.method.save(self.components, self.run.adapter_dir)

    def sample_grid(self, step: int, before_after: bool = False) -> Path | None:
        """Save ``samples/step-NNNNNN.png`` (prompts × seeds) from the current weights."""
        if not self.accelerator.is_main_process or not self.recipe.sample.prompts:
            return None
        pipeline = self.components.pipeline(self.resolved.sampler.build(dict(self.components.scheduler_config)))
        trained = [m for m in (self.components.unet, self.components.text_encoder) if m.training]
        for module in trained:
            module.eval()
        try:
            with self._weights_to_save():
                rows = generate(pipeline, SampleSpec.from_recipe(self.recipe))
        finally:
            for module in trained:
                module.train()
        prompts = list(self.recipe.sample.prompts)
        path = save_grid(rows, prompts, self.run.samples_dir / f"{ckpt.checkpoint_name(step)}.png")
        if step == 0:
            self.base_rows = rows
        elif before_after and self.base_rows is not None:
            save_before_after(self.base_rows, rows, prompts, self.run.samples_dir / "before-after.png")
        return path
