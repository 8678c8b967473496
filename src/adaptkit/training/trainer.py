"""The training recipe: setup / train / save / cleanup, on accelerate.

One readable loop. Everything with a job of its own lives beside it in :mod:`adaptkit.training`
(objective, optimizers, EMA, attention, batches, caches, telemetry, checkpoints, the writer of
checkpoints and samples); components come from plugins through the resolved recipe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from adaptkit.component import Conditioning
from adaptkit.data.holdout import EVAL
from adaptkit.errors import UserError
from adaptkit.models.family import AUTO
from adaptkit.models.quantize import check_quantized_method
from adaptkit.resolve import ResolvedRecipe
from adaptkit.run import Run, TrainingResult, check_same_identity
from adaptkit.sampling.pipeline import check_sampler
from adaptkit.training import checkpoint as ckpt
from adaptkit.training import faults, trackers
from adaptkit.training.attention import configure_attention
from adaptkit.training.batch_inputs import BatchInputs
from adaptkit.training.batches import Batch, Layout, derive_seed, loss_mask, training_loader
from adaptkit.training.dataprep import keep_under_limit
from adaptkit.training.ema import EmaWeights, check_ema_state
from adaptkit.training.fastpaths import enable_tf32, maybe_compile, use_channels_last
from adaptkit.training.long_captions import caption_chunks, check_chunking
from adaptkit.training.objective import objective_for
from adaptkit.training.optim import NonFiniteGuard, build_lr_scheduler, build_optimizer, nonfinite_stop
from adaptkit.training.placement import WEIGHT_DTYPES, place_modules
from adaptkit.training.priors import make_prior_images, pending_prior_sets
from adaptkit.training.processes import agreed, agreed_stop_signal, on_main_process
from adaptkit.training.progress import TrainingProgress
from adaptkit.training.rng import get_rng_state, set_rng_state
from adaptkit.training.run_lock import RunLock
from adaptkit.training.run_start import claim_run_dir
from adaptkit.training.sharded_checkpoint import load_shards, refuse_sharded_checkpoint
from adaptkit.training.sharding import is_fsdp, set_wrap_policy, sharding_backend, trained_parameters
from adaptkit.training.signals import TrainingInterrupted, graceful_stop
from adaptkit.training.telemetry import Throughput, peak_memory_mb
from adaptkit.training.validation import Validation
from adaptkit.training.writer import RunWriter


class Trainer:
    """Trains one resolved recipe. ``resume`` is None, ``"latest"`` or a checkpoint path."""

    def __init__(
        self,
        resolved: ResolvedRecipe,
        *,
        resume: str | None = None,
        overwrite: bool = False,
        force: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.method = resolved.method
        self.resume = resume
        self.overwrite = overwrite
        self.force = force
        self.show_progress = show_progress
        self.run = Run(self.recipe, resolved.path, resolved.run_dir, method=self.method)
        self.hook = resolved.manager.hook
        self.start_step = 0
        self.resume_from: Path | None = None  # the checkpoint claim_run_dir found (main process only)
        self.lock = RunLock(resolved.run_dir)
        self.truncated_captions = 0  # captions cut at the tokenizer's model_max_length

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Accelerator and run folder, then data, model and optimization; then resume if asked."""
        self._setup_accelerator()
        self._setup_data()  # its mistakes (a missing column, no usable row) fail before the model loads
        self._setup_model()
        self._setup_optimization()
        self.writer = RunWriter(
            self.run,
            self.method,
            self.components,
            self.resolved.sampler,
            self.hook,
            self.ema,
            optimizer_weights=lambda: self.resolved.optimizer.evaluating(self.optimizer, self.trainable),
            sharded=self.sharded,
            registries=self.resolved.registries,
        )
        if self.resume is not None:  # found (and checked) by claim_run_dir on the main process, before the caches
            self._restore(self.resume_from or ckpt.resume_path(self.resume, self.run.dir.checkpoints))

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator

        from adaptkit.training.cache import cache_settings
        from adaptkit.training.launcher import current_launch
        from adaptkit.training.sharding import enable_fsdp, refuse_unsharded_features
        from adaptkit.training.zero import (
            accelerator_device_options,
            configure_deepspeed,
            is_deepspeed,
            settle_accumulation_setting,
        )

        train = self.recipe.train
        if train.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise UserError("train.mixed_precision = 'fp16' needs a CUDA device; use 'bf16' or 'no' on CPU")
        self.cache_settings = cache_settings(self.recipe.data, self.method.trains_text_encoder, self.method.name)
        # cpu=True on a machine without CUDA: that is what makes accelerate join a torchrun/gloo
        # group there (MULTI_CPU); without it every process trains alone and all of them write.
        # (DeepSpeed on CPU: see accelerator_device_options.)
        # mixed_precision=None (not set in the recipe) lets accelerate read the user's
        # `accelerate config` / `accelerate launch --mixed_precision` (ACCELERATE_MIXED_PRECISION).
        # Accumulation goes through accelerate (``accelerator.accumulate``) on every backend, so DDP skips
        # the all-reduce of all but the last micro-batch and DeepSpeed steps its engine once per step.
        settle_accumulation_setting(train.gradient_accumulation)
        self.accelerator = Accelerator(
            mixed_precision=train.mixed_precision,
            gradient_accumulation_steps=train.gradient_accumulation,
            **accelerator_device_options(torch.cuda.is_available()),
            **trackers.accelerator_options(self.recipe.log, self.run.dir.logs),
        )
        self.run.accelerator = self.accelerator
        enable_fsdp(self.accelerator)
        backend = sharding_backend(self.accelerator)
        self.sharded = backend is not None
        if backend is not None:
            refuse_unsharded_features(self.recipe, self.method, backend)
        if is_deepspeed(self.accelerator):
            configure_deepspeed(self.accelerator, train, self.resolved.optimizer)
        if self.accelerator.is_main_process:
            acc = self.accelerator
            how = acc.device.type if acc.num_processes == 1 else f"{acc.distributed_type.value}, {acc.state.backend}"
            print(f"launch: {current_launch().describe()} ({how})")
        if train.mixed_precision is None:  # the resolved recipe records what ran
            train = train.model_copy(update={"mixed_precision": self.accelerator.mixed_precision})
            self.recipe = self.run.recipe = self.recipe.model_copy(update={"train": train})
        if train.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise UserError(
                "mixed precision 'fp16' (from the accelerate config) needs a CUDA device; use 'bf16' or 'no'"
            )
        self.resume_from = on_main_process(
            self.accelerator,
            lambda: claim_run_dir(
                self.run.run_dir,
                self.recipe,
                self.lock,
                resume=self.resume,
                overwrite=self.overwrite,
                recipe_dir=self.resolved.path.parent,
            ),
        )
        trackers.start(self.accelerator, self.recipe, self.run.run_dir)
        enable_tf32()

    def _setup_data(self) -> None:
        from adaptkit.data.run_examples import load_run_examples, load_training_sets
        from adaptkit.training.dataprep import build_training_data

        data = self.recipe.data
        pending = pending_prior_sets(self.recipe)  # loaded once the base has generated them
        sets = load_training_sets(self.resolved.dataset, data, self.resolved.extra_datasets, pending)
        self.examples = examples = sets.examples
        held_out = load_run_examples(self.resolved.dataset, data, EVAL) if self.recipe.validation.every else None
        self.validation = Validation(self.recipe.validation, held_out)
        self.training_data = build_training_data(
            examples, self.recipe, self.cache_settings, repeats=sets.repeats, weights=sets.weights
        )
        self.training_examples = self.training_data.examples

    def _setup_model(self) -> None:
        """Load the base, set the objective, let the method prepare it, place it, fill the caches."""
        from adaptkit.models import load_base_model
        from adaptkit.training.dataprep import fill_caches

        train = self.recipe.train
        torch.manual_seed(train.seed)
        check_quantized_method(self.recipe.model, self.method)
        self.components = components = load_base_model(self.recipe.model)
        self.run.components = components
        if self.accelerator.is_main_process:
            how = "detected" if self.recipe.model.family == AUTO else "model.family"
            print(f"model family: {components.family.name} ({how})")
        check_sampler(self.resolved.sampler, components.family)  # before training, not at the first grid
        check_chunking(self.recipe.data, components)
        self.objective = objective_for(self.recipe.train, components)
        configure_attention(components.unet, train.attention)
        if pending_prior_sets(self.recipe):  # by the base, before any adapter: then the data again
            on_main_process(self.accelerator, lambda: make_prior_images(self.recipe, components, self.resolved.sampler))
            self.accelerator.wait_for_everyone()
            self._setup_data()

        base_param_ids = {id(p) for m in components.parts().values() for p in m.parameters()}
        torch.manual_seed(derive_seed(train.seed, "init"))
        self.trainable = self.method.prepare(components)
        self.trains_base = any(id(p) in base_param_ids for p in self.trainable)
        place_modules(
            components,
            self.trainable,
            self.accelerator.device,
            WEIGHT_DTYPES[self.recipe.train.mixed_precision],
            cast_frozen=not self.trains_base,
            trains_text_encoder=self.method.trains_text_encoder,
        )
        if train.gradient_checkpointing:
            components.unet.enable_gradient_checkpointing()
            if self.method.trains_text_encoder:
                for encoder in components.text_encoders().values():
                    encoder.gradient_checkpointing_enable()
        use_channels_last(components, self.accelerator.device)
        self.latent_cache, self.text_cache = fill_caches(
            self.training_data, self.cache_settings, components, self.accelerator, self.recipe
        )
        if self.validation.enabled and self.accelerator.is_main_process:
            self.validation.prepare(components, self.recipe.data, self.accelerator.device)

    def _setup_optimization(self) -> None:
        """Optimizer, schedule and EMA; then ``accelerator.prepare`` and the batch layout."""
        train, accelerator = self.recipe.train, self.accelerator
        self.optimizer = build_optimizer(self.trainable, train, self.resolved.optimizer)
        self.lr_scheduler = build_lr_scheduler(self.optimizer, train)

        encoders = list(self.components.text_encoders().values())
        prepared = [maybe_compile(self.components.unet, train.compile), self.optimizer]
        if self.method.trains_text_encoder:
            prepared.extend(encoders)
        if is_fsdp(accelerator):
            blocks = set_wrap_policy(accelerator, self.components.family, self.components.unet)
            if accelerator.is_main_process:
                print(f"fsdp: sharding the denoiser by {', '.join(blocks) or 'the accelerate config'}")
        prepared = accelerator.prepare(*prepared)
        self.unet, self.optimizer = prepared[0], prepared[1]
        if is_fsdp(accelerator):  # fully_shard put sharded parameters in place of the method's
            self.trainable = trained_parameters(self.optimizer)
        self.ema = EmaWeights(self.trainable, self.recipe.ema) if self.recipe.ema.enabled else None
        self.text_encoders = tuple(prepared[2:]) if self.method.trains_text_encoder else tuple(encoders)
        self.guard = NonFiniteGuard(self.optimizer, accelerator.device, accelerator.num_processes)
        self.inputs = BatchInputs(
            self.components,
            self.text_encoders,
            self.latent_cache,
            self.text_cache,
            accelerator.device,
            self.method.trains_text_encoder,
            caption_chunks(self.recipe.data),
        )
        self.layout = Layout(
            train.batch_size, train.gradient_accumulation, accelerator.num_processes, accelerator.process_index
        )

    def _restore(self, path: Path) -> None:
        # Every file's hash is read once, on the main process, not by every process (a sharded
        # checkpoint holds every process's shards); its refusal stops them all.
        on_main_process(self.accelerator, lambda: ckpt.verify_checkpoint(path))
        contents = ckpt.load_checkpoint(path, verify_hashes=False)
        if not self.force:
            check_same_identity(contents.manifest, self.recipe, path)
        if self.sharded:  # the model's and the optimizer's shards, each process its own
            load_shards(self.accelerator, path, contents.manifest)
        else:
            refuse_sharded_checkpoint(path, contents.manifest)
            self.method.load_trainable_state_dict(self.components, contents.trainable)
            self.optimizer.load_state_dict(contents.state["optimizer"])
        self.lr_scheduler.load_state_dict(contents.state["lr_scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(check_ema_state(contents.state.get("ema"), self.trainable, f"--resume {path}"))
        if self.accelerator.scaler is not None and contents.state.get("scaler"):
            self.accelerator.scaler.load_state_dict(contents.state["scaler"])
        set_rng_state(contents.state.get("rng"))
        self.guard.load_state_dict(contents.state.get("nonfinite") or {})
        self.validation.early_stop.load_state_dict(contents.state.get("validation"))
        self.start_step = contents.step
        if self.accelerator.is_main_process:
            dropped = self.run.trim_metrics(contents.step)
            later = f"; dropped {dropped} metrics.jsonl rows logged after it" if dropped else ""
            print(f"resuming from {path} (step {contents.step}){later}")

    # ------------------------------------------------------------------ save

    def training_state(self) -> dict[str, Any]:
        """Everything besides the trainable weights that exact resume needs."""
        scaler = self.accelerator.scaler
        return {
            "optimizer": None if self.sharded else self.optimizer.state_dict(),  # sharded: in the shards
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,  # gathered whole when sharded
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": get_rng_state(),
            "nonfinite": self.guard.state_dict(),
            "validation": self.validation.early_stop.state_dict(),
        }

    def save_checkpoint(self, step: int) -> Path | None:
        """A complete checkpoint for ``step`` (main process only; None elsewhere)."""
        return self.writer.checkpoint(step, self.training_state())

    # ------------------------------------------------------------------ train

    def train(self) -> TrainingResult:
        """Train to ``train.steps``; save the last checkpoint, the result, ``result.json`` and the grids."""
        recipe, train = self.recipe, self.recipe.train
        accelerator = self.accelerator
        batches = iter(
            training_loader(
                self.training_examples,
                self.layout,
                self.start_step,
                train,
                self.components.tokenizers(),
                caption_chunks(self.recipe.data),
            )
        )
        self.hook.on_train_start(run=self.run)
        if self.start_step == 0 and recipe.sample.prompts:
            self.writer.samples(0)

        throughput, started = Throughput(), time.perf_counter()
        last_loss = float("nan")
        progress = TrainingProgress(
            train.steps, self.start_step, enabled=accelerator.is_main_process, bar=self.show_progress
        )
        self.unet.train()
        final_step = train.steps
        with progress, graceful_stop() as stop:
            for step in range(self.start_step, train.steps):
                self._optimizer_step(step, batches)
                throughput.add(self.layout.examples_per_step)
                done = step + 1
                faults.inject("step-end", done)
                if done % train.log_every == 0 or done == train.steps:
                    last_loss = self._log_step(done, throughput, started, progress)
                else:
                    progress.advance(done)
                if self.validation.due(done, train.steps) and self._validate(done, progress) and done < train.steps:
                    final_step = done  # early stop: finish here
                    break
                if recipe.checkpoint.every and done % recipe.checkpoint.every == 0 and done < train.steps:
                    self.save_checkpoint(done)
                if recipe.sample.every and done % recipe.sample.every == 0 and done < train.steps:
                    self.writer.samples(done)
                signum = agreed_stop_signal(self.accelerator, stop.signum)
                if signum and done < train.steps:
                    raise TrainingInterrupted(signum, done, self.save_checkpoint(done))
        first_draw = self.latent_cache.first_draw if self.latent_cache is not None else None
        totals = None
        if first_draw is not None:  # every process's draws
            totals = accelerator.reduce(first_draw.counts().to(accelerator.device), "sum").tolist()
        if first_draw is not None and accelerator.is_main_process:
            print(first_draw.line(totals), flush=True)
            if self.cache_settings.limit is not None:  # now that the run's own entries are known
                keep_under_limit(first_draw.store, self.cache_settings.limit, print)
        return self._finish(last_loss, time.perf_counter() - started, final_step)

    def _validate(self, done: int, progress: TrainingProgress) -> bool:
        """The validation at step ``done``; whether to stop early (agreed by every process)."""
        stop = False
        if self.accelerator.is_main_process:
            with self.writer.saved_weights(), self.accelerator.autocast():
                stop = self.validation.record(done, self.objective, self.components, self.run, progress.note)
        return agreed(self.accelerator, stop)

    def _log_step(self, done: int, throughput: Throughput, started: float, progress: TrainingProgress) -> float:
        """Log step ``done`` to ``metrics.jsonl``, the trackers and ``on_step_end``; returns its loss."""
        train, accelerator = self.recipe.train, self.accelerator
        loss, skipped, longest = self.guard.read()  # the only host sync of the loss
        logs = {
            "step": done,
            "loss": loss,
            "lr": self.lr_scheduler.get_last_lr()[0],
            "images_per_s": throughput.read(),
            "peak_memory_mb": peak_memory_mb(accelerator.device),
            "time_s": time.perf_counter() - started,
            "nonfinite_steps": skipped,
        }
        if accelerator.is_main_process:
            self.run.log_metrics(logs)
            trackers.log(accelerator, logs, done)
        if train.max_nonfinite_steps and longest >= train.max_nonfinite_steps:
            raise nonfinite_stop(longest, skipped, done, train.max_nonfinite_steps, self.run)
        self.hook.on_step_end(run=self.run, step=done, logs=logs)
        progress.update(done, logs)
        return loss

    def _finish(self, last_loss: float, wall: float, final_step: int) -> TrainingResult:
        """The last checkpoint (of ``final_step``: ``train.steps``, or an early stop's), the result in
        ``adapter/``, ``result.json``, the final grids, then ``on_train_end``."""
        steps_run = final_step - self.start_step
        result = TrainingResult(
            steps=final_step,
            steps_this_session=steps_run,
            final_loss=last_loss,
            wall_time_s=wall,
            images_per_s=steps_run * self.layout.examples_per_step / max(wall, 1e-9),
            adapter_dir=str(self.run.dir.adapter),
            examples=len(self.examples),
            skipped_examples=getattr(self.examples, "skipped", 0),
            truncated_captions=self.truncated_captions,
            nonfinite_steps=self.guard.state_dict()["skipped"],
            main_process=self.accelerator.is_main_process,
        )
        self.save_checkpoint(final_step)
        self.writer.result()
        if self.recipe.sample.prompts:
            self.writer.samples(final_step, before_after=True)
        if self.accelerator.is_main_process:
            result.write(self.run.dir.result)
            self.hook.on_train_end(run=self.run, result=result)
        # Every process leaves together: cleanup's end_training destroys the process group, which
        # a process must not do while another may still be in a collective with it.
        self.accelerator.wait_for_everyone()
        return result

    def _optimizer_step(self, step: int, batches) -> torch.Tensor:
        """One optimizer step over ``gradient_accumulation`` micro-batches; returns the loss (on device)."""
        train, accelerator = self.recipe.train, self.accelerator
        total = torch.zeros((), device=accelerator.device)
        for micro in range(train.gradient_accumulation):
            batch: Batch = next(batches)
            seed = derive_seed(train.seed, "step", step, micro, accelerator.process_index)
            torch.manual_seed(seed)  # dropout and anything else drawing from the global RNG
            generator = torch.Generator().manual_seed(seed)
            with accelerator.accumulate(*self._trained_models()), accelerator.autocast():
                latents = self.inputs.latents(batch, generator)
                conditioning = self.inputs.conditioning(batch)
                self.truncated_captions += batch.truncated
                mask = loss_mask(batch, latents)
                loss = self.objective.loss(
                    self.unet, self.components.noise_scheduler, latents, conditioning, generator, self._predict, mask
                )
                loss = faults.poison_loss(loss, step)
                accelerator.backward(loss)  # divided by gradient_accumulation there
            total += loss.detach() / train.gradient_accumulation
        if train.max_grad_norm is not None:
            accelerator.clip_grad_norm_(self.trainable, train.max_grad_norm)
        # A non-finite loss skips the step on the device (fused AdamW's found_inf), counted by the guard.
        skipped = self.guard.step(self.optimizer, total, lambda t: accelerator.reduce(t, reduction="max"))
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(skipped)
        return total

    def _trained_models(self) -> tuple[torch.nn.Module, ...]:
        """The prepared modules whose gradients accumulate (the denoiser, and the text encoders it trains)."""
        return (self.unet, *(self.text_encoders if self.method.trains_text_encoder else ()))

    def _predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
        return self.components.family.predict(self.unet, noisy, timesteps, conditioning)

    def cleanup(self) -> None:
        """Close the trackers, forget this run's accelerator settings and release the run folder.

        accelerate 1.15 keeps ``AcceleratorState`` for the life of the process and refuses a later
        ``Accelerator`` with another mixed precision; a second run in one process (tests, the
        bench) must start clean. ``end_training`` also destroys the process group (accelerate 1.15).
        """
        if getattr(self, "accelerator", None) is not None:
            from accelerate.state import AcceleratorState, GradientState

            self.accelerator.end_training()
            AcceleratorState._reset_state()
            GradientState._reset_state()
        self.lock.release()


def train_recipe(resolved: ResolvedRecipe, **kwargs: Any) -> TrainingResult:
    """Set up, train, save and clean up: the whole run."""
    trainer = Trainer(resolved, **kwargs)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.cleanup()


__all__ = ["Trainer", "train_recipe"]
