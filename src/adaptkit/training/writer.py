"""What a training run writes: checkpoints, the method's result and sample grids (main process only).

:class:`RunWriter` is composed into the trainer; it is given everything it writes from, and the
trainer hands it the optimizer-side state of each checkpoint (:meth:`RunWriter.checkpoint`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptkit.run import Run, follow_umask, package_versions, recipe_hash, recipe_identity
from adaptkit.sampling.generate import GenerationSettings, generate_grid
from adaptkit.sampling.grids import save_before_after, save_grid
from adaptkit.sampling.pipeline import sampling_pipeline
from adaptkit.training import checkpoint as ckpt
from adaptkit.training.sharded_checkpoint import write_sharded_checkpoint
from adaptkit.training.sharding import gathered
from adaptkit.training.zero import full_parameters

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from PIL import Image

    from adaptkit.component import Method, Sampler
    from adaptkit.models import SDComponents
    from adaptkit.training.ema import EmaWeights


class RunWriter:
    """Checkpoints, the result in ``adapter/`` and sample grids of one run, from its live weights."""

    def __init__(
        self,
        run: Run,
        method: "Method",
        components: "SDComponents",
        sampler: "Sampler",
        hook: Any,
        ema: "EmaWeights | None",
        optimizer_weights: "Callable[[], contextlib.AbstractContextManager[None]]" = contextlib.nullcontext,
        sharded: bool = False,
        registries: Any = None,
    ) -> None:
        self.run, self.recipe, self.method, self.components = run, run.recipe, method, components
        self.sampler, self.hook, self.ema = sampler, hook, ema
        self.accelerator = run.accelerator
        self.base_rows: list[list[Image.Image]] | None = None  # the base model's grid (step 0), for before-after.png
        #: The optimizer's weights to read (``Optimizer.evaluating``).
        self.optimizer_weights = optimizer_weights
        #: FSDP or DeepSpeed: every process takes part in checkpoints, results and grids (each forward, and
        #: each gather of ZeRO-3's partitioned weights, is collective).
        self.sharded = sharded
        self.registries = registries  # to build a sharded run's result on a fresh copy of the base

    @contextlib.contextmanager
    def saved_weights(self) -> Iterator[None]:
        """The weights a result holds: the optimizer's to read (schedule-free's average), then the EMA's
        when EMA is on. Under ZeRO-3 the denoiser's weights are whole for the block (every process enters it)."""
        ema = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
        with full_parameters(self.components.unet.parameters(), modify=True), self.optimizer_weights(), ema:
            yield

    def gathered_trainable(self) -> dict[str, Any]:
        """The method's trainable weights, whole and on the CPU (sharded: every process calls it)."""
        with full_parameters(self.components.unet.parameters()):
            return gathered(self.method.trainable_state_dict(self.components))

    def checkpoint(self, step: int, training_state: dict[str, Any]) -> Path | None:
        """Write a complete checkpoint for ``step``, apply retention; its path (None off the main process)."""
        self.accelerator.wait_for_everyone()
        main = self.accelerator.is_main_process
        if not main and not self.sharded:
            return None
        manifest = {
            "recipe_hash": recipe_hash(self.recipe),
            "identity": recipe_identity(self.recipe),
            "versions": package_versions(),
            "method": self.method.name,
        }
        root = self.run.dir.checkpoints
        if main:
            ckpt.discard_after(root, step)  # a resumed run's abandoned future
        if self.sharded:
            trainable = self.gathered_trainable()
            path = write_sharded_checkpoint(self.accelerator, root, step, trainable, training_state, manifest)
            if path is None:
                return None
        else:
            trainable = self.method.trainable_state_dict(self.components)
            path = ckpt.write_checkpoint(root, step, trainable, training_state, manifest)
        follow_umask(path)
        ckpt.apply_retention(root, self.recipe.checkpoint.keep)
        self.hook.on_checkpoint(run=self.run, path=path)
        return path

    def result(self) -> None:
        """The method's output in ``adapter/`` — with the EMA weights when EMA is on.

        A sharded run's live model only exists in shards: every process gathers the weights to save,
        and the main process saves them from a fresh copy of the base (as ``adaptkit export`` does).
        """
        self.accelerator.wait_for_everyone()
        if self.sharded:
            from adaptkit.training.checkpoint_use import model_with_weights

            with self.saved_weights():
                weights = gathered(self.method.trainable_state_dict(self.components))
            if self.accelerator.is_main_process:
                loaded, _ = model_with_weights(self.recipe, self.registries, weights)
                loaded.method.save(loaded.components, self.run.dir.adapter)
        elif self.accelerator.is_main_process:
            with self.saved_weights():
                self.method.save(self.components, self.run.dir.adapter)
        if self.accelerator.is_main_process:
            follow_umask(self.run.dir.adapter)

    def samples(self, step: int, before_after: bool = False) -> Path | None:
        """Save ``samples/step-NNNNNN.png`` (prompts × seeds) from the current weights (sharded: every
        process samples, the main one saves)."""
        main = self.accelerator.is_main_process
        if (not main and not self.sharded) or not self.recipe.sample.prompts:
            return None
        c = self.components
        pipeline = sampling_pipeline(c, self.sampler)
        trained = [m for m in c.parts().values() if m.training]
        for module in trained:
            module.eval()
        try:
            with self.saved_weights():
                rows = generate_grid(pipeline, self.recipe.sample.prompts, self.recipe.sample.seeds, self.settings)
        finally:
            for module in trained:
                module.train()
        if not main:
            return None
        prompts = list(self.recipe.sample.prompts)
        path = save_grid(rows, prompts, self.run.dir.samples / f"{ckpt.checkpoint_name(step)}.png")
        if step == 0:
            self.base_rows = rows
        elif before_after and self.base_rows is not None:
            save_before_after(self.base_rows, rows, prompts, self.run.dir.before_after)
        return path

    @property
    def settings(self) -> GenerationSettings:
        """The recipe's ``[sample]`` settings."""
        return GenerationSettings.from_recipe(self.recipe)
