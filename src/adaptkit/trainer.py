"""The training recipe: setup / train / save_checkpoint / cleanup, on accelerate.

One readable loop. Everything with a job of its own lives in :mod:`adaptkit.training`
(objective, optimizers, EMA, attention, batches, telemetry), :mod:`adaptkit.checkpoint` and
:mod:`adaptkit.sampling`; components come from plugins through the resolved recipe.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from adaptkit import checkpoint as ckpt
from adaptkit.errors import UserError
from adaptkit.progress import TrainingProgress
from adaptkit.resolve import ResolvedRecipe
from adaptkit.run import Run, check_same_identity, prepare_run_dir
from adaptkit.training import faults, trackers
from adaptkit.training.attention import configure_attention
from adaptkit.training.batches import Collate, Layout, PositionSampler, derive_seed
from adaptkit.training.ema import EmaWeights, check_ema_state
from adaptkit.training.fastpaths import enable_tf32, maybe_compile, use_channels_last
from adaptkit.training.objective import ObjectiveConfig, check_timestep_range, diffusion_loss
from adaptkit.training.optim import NonFiniteGuard, build_lr_scheduler, build_optimizer, nonfinite_stop
from adaptkit.training.outputs import TrainerOutputs
from adaptkit.training.rng import set_rng_state
from adaptkit.training.signals import TrainingInterrupted, graceful_stop, ignore_stop_signals
from adaptkit.training.telemetry import Throughput, peak_memory_mb

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Trainer(TrainerOutputs):
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
        self.run = Run(self.recipe, resolved.path, resolved.run_dir)
        self.run.state["trainer"] = self
        self.hook = resolved.manager.hook
        self.start_step = 0
        self.base_rows: list | None = None  # the base model's grid (step 0), for before-after.png
        self.truncated_captions = 0  # captions cut at the tokenizer's model_max_length

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        from accelerate import Accelerator

        from adaptkit.models import load_base_model
        from adaptkit.training.cache import cache_settings
        from adaptkit.training.dataprep import build_training_data, fill_caches

        train = self.recipe.train
        if train.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise UserError("train.mixed_precision = 'fp16' needs a CUDA device; use 'bf16' or 'no' on CPU")
        self.cache_settings = cache_settings(self.recipe.data, self.method.trains_text_encoder, self.method.name)
        # cpu=True on a machine without CUDA: that is what makes accelerate join a torchrun/gloo
        # group there (MULTI_CPU); without it every process trains alone and all of them write.
        self.accelerator = accelerator = Accelerator(
            mixed_precision=train.mixed_precision,
            cpu=not torch.cuda.is_available(),
            **trackers.accelerator_options(self.recipe.log, self.run.run_dir),
        )
        self.run.accelerator = accelerator
        self._on_main_process(
            lambda: prepare_run_dir(
                self.run.run_dir,
                self.recipe,
                resuming=self.resume is not None,
                overwrite=self.overwrite,
                recipe_dir=self.resolved.path.parent,
            )
        )
        trackers.start(accelerator, self.recipe, self.run.run_dir)
        enable_tf32()

        # The dataset first: its mistakes (a missing column, no usable row) fail before the model loads.
        examples = self.resolved.dataset.load("train")
        if self.recipe.data.max_examples:
            from adaptkit.data.loading import limit_examples

            examples = limit_examples(examples, self.recipe.data.max_examples)
        self.examples = examples
        self.training_data = build_training_data(examples, self.recipe, self.cache_settings)
        self.training_examples = self.training_data.examples

        torch.manual_seed(train.seed)
        components = load_base_model(self.recipe.model)
        self.run.components = self.components = components
        if train.prediction_type:  # the training target, and every scheduler built for sampling
            components.noise_scheduler.register_to_config(prediction_type=train.prediction_type)
            components.scheduler_config["prediction_type"] = train.prediction_type
        self.objective = ObjectiveConfig(
            prediction_type=components.noise_scheduler.config.prediction_type,
            snr_gamma=train.snr_gamma,
            noise_offset=train.noise_offset,
            input_perturbation=train.input_perturbation,
            min_timestep=train.min_timestep,
            max_timestep=train.max_timestep,
        )
        check_timestep_range(self.objective, components.noise_scheduler.config.num_train_timesteps)
        configure_attention(components.unet, train.attention)

        base_param_ids = {id(p) for m in (components.unet, components.text_encoder) for p in m.parameters()}
        torch.manual_seed(derive_seed(train.seed, "init"))
        self.trainable = self.method.prepare(components)
        self.trains_base = any(id(p) in base_param_ids for p in self.trainable)
        self._place_modules()
        if train.gradient_checkpointing:
            components.unet.enable_gradient_checkpointing()
            if self.method.trains_text_encoder:
                components.text_encoder.gradient_checkpointing_enable()
        use_channels_last(components, accelerator.device)
        self.latent_cache, self.text_cache = fill_caches(
            self.training_data, self.cache_settings, components, accelerator, self.recipe
        )

        self.optimizer = build_optimizer(self.trainable, train)
        self.lr_scheduler = build_lr_scheduler(self.optimizer, train)
        self.ema = EmaWeights(self.trainable, self.recipe.ema) if self.recipe.ema.enabled else None

        prepared = [maybe_compile(components.unet, train.compile), self.optimizer]
        if self.method.trains_text_encoder:
            prepared.append(components.text_encoder)
        prepared = accelerator.prepare(*prepared)
        self.unet, self.optimizer = prepared[0], prepared[1]
        self.guard = NonFiniteGuard(self.optimizer, accelerator.device, accelerator.num_processes)
        self.text_encoder = prepared[2] if self.method.trains_text_encoder else components.text_encoder
        self.layout = Layout(
            train.batch_size, train.gradient_accumulation, accelerator.num_processes, accelerator.process_index
        )
        if self.resume is not None:
            self._restore(ckpt.resume_path(self.resume, self.run.checkpoints_dir))

    def _on_main_process(self, action) -> None:
        """Run ``action`` on the main process only; its UserError is raised on every process.

        The error lines are broadcast (``broadcast_object_list``, a barrier too), so the other
        ranks exit with the same message instead of waiting forever in ``wait_for_everyone``;
        each prints it before a second barrier, so none is stopped by torchrun before it has.
        """
        lines: list[str] = []
        if self.accelerator.is_main_process:
            try:
                action()
            except UserError as exc:
                lines = exc.lines
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            lines = broadcast_object_list([lines])[0]
        if lines:
            error = UserError(*lines)
            if self.accelerator.num_processes > 1:
                error.print_on_every_process(self.accelerator.wait_for_everyone)
            raise error

    def _place_modules(self) -> None:
        """Frozen weights in the mixed-precision dtype, trainable ones in float32, all on the device."""
        device = self.accelerator.device
        weight_dtype = WEIGHT_DTYPES[self.recipe.train.mixed_precision]
        c = self.components
        # The VAE stays in float32 (SD's VAE overflows in fp16; autocast still runs it in bf16),
        # so a full fine-tune saves a float32 pipeline.
        c.vae.requires_grad_(False).to(device)
        for module in (c.unet, c.text_encoder):
            module.to(device)
            if weight_dtype != torch.float32 and not self.trains_base:
                for param in module.parameters():
                    if not param.requires_grad:
                        param.data = param.data.to(weight_dtype)
        for param in self.trainable:
            param.data = param.data.float()
        c.vae.eval()
        if not self.method.trains_text_encoder:
            c.text_encoder.eval()

    def _restore(self, path: Path) -> None:
        contents = ckpt.load_checkpoint(path)
        if not self.force:
            check_same_identity(contents.manifest, self.recipe, path)
        if contents.step > self.recipe.train.steps:
            raise UserError(
                f"--resume {path}: the checkpoint is at step {contents.step}, past train.steps = "
                f"{self.recipe.train.steps}; raise train.steps to continue"
            )
        self.method.load_trainable_state_dict(self.components, contents.trainable)
        self.optimizer.load_state_dict(contents.state["optimizer"])
        self.lr_scheduler.load_state_dict(contents.state["lr_scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(check_ema_state(contents.state.get("ema"), self.trainable, f"--resume {path}"))
        if self.accelerator.scaler is not None and contents.state.get("scaler"):
            self.accelerator.scaler.load_state_dict(contents.state["scaler"])
        set_rng_state(contents.state.get("rng"))
        self.guard.load_state_dict(contents.state.get("nonfinite") or {})
        self.start_step = contents.step
        if self.accelerator.is_main_process:
            print(f"resuming from {path} (step {contents.step})")

    # ------------------------------------------------------------------ train

    def train(self) -> dict[str, Any]:
        recipe, train = self.recipe, self.recipe.train
        accelerator = self.accelerator
        loader = DataLoader(
            self.training_examples,
            batch_size=train.batch_size,
            sampler=PositionSampler(self.layout, self.start_step, train.steps),
            collate_fn=Collate(self.components.tokenizer),
            num_workers=train.num_workers,
            worker_init_fn=ignore_stop_signals if train.num_workers else None,
            pin_memory=torch.cuda.is_available(),
        )
        batches = iter(loader)
        self.hook.on_train_start(run=self.run)
        if self.start_step == 0 and accelerator.is_main_process and recipe.sample.prompts:
            self.sample_grid(0)

        throughput, started = Throughput(), time.perf_counter()
        last_loss, rates = float("nan"), []
        progress = TrainingProgress(
            train.steps, self.start_step, enabled=self.show_progress and accelerator.is_main_process
        )
        self.unet.train()
        with progress, graceful_stop() as stop:
            for step in range(self.start_step, train.steps):
                self._optimizer_step(step, batches)
                throughput.add(self.layout.examples_per_step)
                done = step + 1
                faults.inject("step-end", done)
                if done % train.log_every == 0 or done == train.steps:
                    last_loss, skipped, longest = self.guard.read()  # the only host sync of the loss
                    rate = throughput.read()
                    rates.append(rate)
                    logs = {
                        "step": done,
                        "loss": last_loss,
                        "lr": self.lr_scheduler.get_last_lr()[0],
                        "images_per_s": rate,
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
                else:
                    progress.advance(done)
                if recipe.checkpoint.every and done % recipe.checkpoint.every == 0 and done < train.steps:
                    self.save_checkpoint(done)
                if recipe.sample.every and done % recipe.sample.every == 0 and done < train.steps:
                    self.sample_grid(done)
                signum = self._agreed_stop_signal(stop.signum)
                if signum and done < train.steps:
                    raise TrainingInterrupted(signum, done, self.save_checkpoint(done))

        wall = time.perf_counter() - started
        steps_run = train.steps - self.start_step
        result = {
            "steps": train.steps,
            "steps_this_session": steps_run,
            "final_loss": last_loss,
            "wall_time_s": wall,
            "images_per_s": steps_run * self.layout.examples_per_step / max(wall, 1e-9),
            "adapter_dir": str(self.run.adapter_dir),
            "examples": len(self.examples),
            "skipped_examples": getattr(self.examples, "skipped", 0),
            "truncated_captions": self.truncated_captions,
            "nonfinite_steps": self.guard.state_dict()["skipped"],
            "main_process": accelerator.is_main_process,
        }
        self.save_checkpoint(train.steps)
        self.save_result()
        if recipe.sample.prompts:
            self.sample_grid(train.steps, before_after=True)
        if accelerator.is_main_process:
            self.hook.on_train_end(run=self.run, result=result)
        return result

    def _agreed_stop_signal(self, signum: int | None) -> int:
        """The stop signal any process received (all processes must stop at the same step)."""
        if self.accelerator.num_processes == 1:
            return signum or 0
        flag = torch.tensor(signum or 0, device=self.accelerator.device)
        return int(self.accelerator.reduce(flag, reduction="max").item())

    def _optimizer_step(self, step: int, batches) -> torch.Tensor:
        """One optimizer step over ``gradient_accumulation`` micro-batches; returns the loss (on device)."""
        train, accelerator = self.recipe.train, self.accelerator
        total = torch.zeros((), device=accelerator.device)
        for micro in range(train.gradient_accumulation):
            batch = next(batches)
            seed = derive_seed(train.seed, "step", step, micro, accelerator.process_index)
            torch.manual_seed(seed)  # dropout and anything else drawing from the global RNG
            generator = torch.Generator().manual_seed(seed)
            last = micro == train.gradient_accumulation - 1
            sync = contextlib.nullcontext() if last else accelerator.no_sync(self.unet)
            with sync, accelerator.autocast():
                latents = self._encode_images(batch, generator)
                hidden = self._encode_text(batch)
                self.truncated_captions += batch["truncated"]
                loss = diffusion_loss(
                    self.unet, self.components.noise_scheduler, latents, hidden, generator, self.objective
                )
                loss = faults.poison_loss(loss, step)
                accelerator.backward(loss / train.gradient_accumulation)
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

    def _encode_images(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        if self.latent_cache is not None:
            return self.latent_cache.sample(batch["indices"], batch["flipped"], generator, self.accelerator.device)
        vae = self.components.vae
        with torch.no_grad():
            pixels = batch["pixel_values"].to(self.accelerator.device, dtype=vae.dtype, non_blocking=True)
            latents = vae.encode(pixels).latent_dist.sample(generator=generator)
        return latents.float() * vae.config.scaling_factor

    def _encode_text(self, batch: dict) -> torch.Tensor:
        if self.text_cache is not None:
            return self.text_cache.lookup(batch["captions"], self.accelerator.device)
        ids = batch["input_ids"].to(self.accelerator.device, non_blocking=True)
        grad = torch.enable_grad() if self.method.trains_text_encoder else torch.no_grad()
        with grad:
            return self.text_encoder(ids, return_dict=False)[0]

    def cleanup(self) -> None:
        if getattr(self, "accelerator", None) is not None:
            self.accelerator.end_training()


def train_recipe(resolved: ResolvedRecipe, **kwargs: Any) -> dict[str, Any]:
    """Set up, train, save and clean up: the whole run."""
    trainer = Trainer(resolved, **kwargs)
    try:
        trainer.setup()
        return trainer.train()
    finally:
        trainer.cleanup()


__all__ = ["Trainer", "train_recipe"]
