"""The recipe schema: one pydantic section per TOML table (``extra="forbid"``), and :class:`Recipe`.

Each component's ``options`` table is validated by that component's own ``Options`` model; reading
and the one-line error messages are :mod:`adaptkit.recipe.loading`'s.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from adaptkit.recipe.data_schema import DataSection, DataSetSection
from adaptkit.recipe.section import Section, check_adapter_scales, check_multiple_of_8

__all__ = ["DataSection", "DataSetSection", "Section"]


class RunSection(Section):
    """Where the run's files go: ``<output_dir>/<name>``."""

    name: str | None = Field(None, description="Run name; defaults to the recipe file's stem.")
    output_dir: str = Field("runs", description="Folder (relative to the working directory) that holds runs.")


class ModelSection(Section):
    """The base model."""

    base: str = Field(
        "embedded:tiny-sd",
        description="Hub id, local diffusers folder, single .safetensors file, or 'embedded:<name>'.",
    )
    family: str = Field(
        "auto",
        description="Model family (adaptkit plugins lists them): 'auto' detects it from the base and prints it.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The model family's own options (e.g. flux's training guidance); see `adaptkit plugins`.",
    )
    config: str | None = Field(
        None, description="For a single-file base: the diffusers folder or Hub id giving its architecture."
    )
    vae: str | None = Field(
        None,
        description="Replace the base's VAE: a diffusers AutoencoderKL folder or Hub id "
        "(e.g. 'madebyollin/sdxl-vae-fp16-fix', since SDXL's own VAE overflows in fp16).",
    )
    text_encoder_3: Literal["none"] | None = Field(
        None,
        description="'none': load without the third text encoder (SD 3.x's T5, as diffusers allows; "
        "saves its memory, its conditioning becomes zeros).",
    )
    quantize: Literal["nf4", "int8", "fp8"] | None = Field(
        None,
        description="Load the frozen denoiser quantised (nf4/int8: bitsandbytes, fp8: torchao) for adapters "
        "trained on top; CUDA only; the adapters train in full precision.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    variant: str | None = Field(None, description="Weights variant, e.g. 'fp16'.")
    allow_pickle: bool = Field(False, description="Allow loading pickle checkpoints (.ckpt/.bin); unsafe.")
    trust_remote_code: bool = Field(False, description="Allow code shipped with a dataset or model to run; unsafe.")


class MethodSection(Section):
    """The adaptation method."""

    name: str = Field(..., description="Method name: full, lora, loha, or a plugin's.")
    options: dict[str, Any] = Field(default_factory=dict, description="The method's own options.")


class TrainSection(Section):
    """The training loop."""

    steps: int = Field(1000, ge=1, description="Optimizer steps.")
    batch_size: int = Field(1, ge=1, description="Images per process per micro-batch.")
    gradient_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, le=1, description="Peak learning rate.")
    lr_scheduler: Literal[
        "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
    ] = Field("constant", description="diffusers get_scheduler name.")
    lr_warmup_steps: int = Field(0, ge=0, description="Warm-up steps.")
    optimizer: str = Field(
        "adamw",
        description="Optimizer (see `adaptkit plugins`): adamw, adamw8bit, lion8bit, prodigy, schedule-free-adamw, "
        "adafactor, or a plugin's.",
    )
    optimizer_options: dict[str, Any] = Field(default_factory=dict, description="The optimizer's own options.")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; omit to disable.")
    mixed_precision: Literal["no", "fp16", "bf16"] | None = Field(
        None,
        description="Mixed precision; unset: what `accelerate config` / `accelerate launch --mixed_precision` say "
        "(else 'no'). The run's recipe.toml records what ran.",
    )
    attention: Literal["sdpa", "xformers"] = Field("sdpa", description="Attention backend.")
    gradient_checkpointing: bool = False
    prediction_type: Literal["epsilon", "v_prediction"] | None = Field(
        None, description="Training target; default: the base model scheduler's."
    )
    zero_terminal_snr: bool = Field(
        False,
        description="Rescale the noise schedule to zero terminal SNR (Lin et al.; diffusers' rescale_betas_zero_snr) "
        "for training and sampling, with trailing timesteps; needs v-prediction (SD 2.x 768 px bases have it).",
    )
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR weighting gamma (5.0 is usual).")
    noise_offset: float = Field(0.0, ge=0, le=1)
    input_perturbation: float = Field(0.0, ge=0, le=1)
    min_timestep: int = Field(0, ge=0, description="Train on timesteps t >= this (as kohya's --min_timestep).")
    max_timestep: int | None = Field(
        None,
        ge=1,
        description="Train on timesteps t < this (kohya's --max_timestep); default: the scheduler's "
        "num_train_timesteps. A low maximum trains the texture-forming, low-noise steps and leaves "
        "layout and colour, decided at high noise, to the base model.",
    )
    timestep_sampling: Literal["uniform", "logit_normal", "mode"] = Field(
        "uniform",
        description="How timesteps (flow matching: sigmas) are drawn (diffusers' "
        "compute_density_for_timestep_sampling); DDPM families map the draw onto [min_timestep, max_timestep).",
    )
    logit_mean: float = Field(0.0, description="timestep_sampling = 'logit_normal': the mean.")
    logit_std: float = Field(1.0, gt=0, description="timestep_sampling = 'logit_normal': the std.")
    mode_scale: float = Field(1.29, description="timestep_sampling = 'mode': the scale.")
    debiased_estimation: bool = Field(
        False,
        description="DDPM families: weight each example's loss by 1/sqrt(SNR) (1/(SNR+1) with v-prediction), "
        "kohya's debiased estimation.",
    )
    loss_weighting: Literal["none", "sigma_sqrt", "cosmap"] = Field(
        "none", description="Flow-matching families: loss weighting (diffusers' compute_loss_weighting_for_sd3)."
    )
    caption_dropout: float = Field(0.0, ge=0, le=1, description="Probability of training on an empty caption.")
    seed: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1, description="Read the loss and log every N steps.")
    max_nonfinite_steps: int = Field(
        5,
        ge=0,
        description="Stop after this many consecutive steps with a non-finite loss (each is skipped and "
        "counted; checked every log_every steps); 0 = never stop.",
    )
    num_workers: int = Field(0, ge=0, le=64, description="Data-loader worker processes.")
    compile: bool = Field(False, description="torch.compile the UNet (slow first steps; pays off on long GPU runs).")

    @model_validator(mode="after")
    def _timestep_range(self) -> "TrainSection":
        if self.max_timestep is not None and self.max_timestep <= self.min_timestep:
            raise ValueError(
                f"max_timestep ({self.max_timestep}) must be greater than min_timestep ({self.min_timestep})"
            )
        return self


class EmaSection(Section):
    """Exponential moving average of the trainable weights (diffusers EMAModel)."""

    enabled: bool = False
    decay: float = Field(0.9999, gt=0, lt=1)
    offload: bool = Field(False, description="Keep EMA weights in CPU memory between updates.")
    foreach: bool = Field(False, description="Use torch._foreach ops for the update.")


class CheckpointSection(Section):
    """Periodic checkpoints for resume."""

    every: int = Field(0, ge=0, description="Write a checkpoint every N steps (0 = only at the end).")
    keep: int = Field(3, ge=1, description="Keep the newest K checkpoints.")


class ValidationSection(Section):
    """The validation loss on held-out images: the same objective at fixed noise levels with fixed noise,
    so it is comparable across steps and runs."""

    every: int = Field(0, ge=0, description="Compute it every N optimizer steps and at the end; 0 = off.")
    examples: int = Field(
        8,
        ge=1,
        le=4096,
        description="At most this many held-out examples: the dataset's 'eval' split (data.options.eval_fraction).",
    )
    noise_levels: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9],
        min_length=1,
        description="Where on the noise schedule (0 = clean, 1 = pure noise) the loss is taken, each with its own "
        "fixed noise; the validation loss is the mean.",
    )
    seed: int = Field(0, ge=0, description="Seed of the fixed noise.")
    early_stop_patience: int = Field(
        0,
        ge=0,
        description="Stop training when this many validations in a row have not improved on the best "
        "(the checkpoint and result are then the stopping step's); 0 = never.",
    )

    @field_validator("noise_levels")
    @classmethod
    def _levels_in_range(cls, value: list[float]) -> list[float]:
        bad = [level for level in value if not 0.0 <= level <= 1.0]
        if bad:
            raise ValueError(f"{bad[0]} is not a noise level (valid: 0.0 to 1.0)")
        return value


class SampleSection(Section):
    """Sample grids during and after training."""

    sampler: str = Field("dpm-solver", description="Sampler name (see `adaptkit plugins`).")
    options: dict[str, Any] = Field(default_factory=dict, description="The sampler's own options.")
    steps: int = Field(25, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0, le=50)
    every: int = Field(0, ge=0, description="Sample every N steps (0 = only before and after).")
    prompts: list[str] = Field(default_factory=list)
    negative_prompt: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    resolution: int | None = Field(None, ge=8, le=4096, description="Default: data.resolution (multiple of 8).")

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        return None if value is None else check_multiple_of_8(value)


#: Error types whose ``ctx["key"]`` names a key below the error's location (see :func:`format_validation_error`).
UNKNOWN_KEY = "unknown_key"
UNLISTED_METRIC = "unlisted_metric"

#: The evaluation prompt sets (see :mod:`adaptkit.evaluation.prompts`).
TrackerName = Literal["tensorboard", "wandb"]
PromptSetName = Literal["in-style", "report", "general", "embedded"]


class EvalSection(Section):
    """Evaluation at the end of a run and by `adaptkit eval RUN_DIR` (base vs adapted, paired prompts × seeds)."""

    model_config = ConfigDict(extra="allow")

    metrics: list[str] = Field(
        default_factory=list,
        description="Metrics to compute (see `adaptkit plugins`); a metric's options go in a table named "
        "after it, e.g. `[eval.kid]` with `subset_size = 50`.",
    )
    embedded_probes: bool = Field(
        False, description="Shorthand for metrics = ['embedded_probes'] (embedded models only)."
    )
    prompt_sets: list[PromptSetName] | None = Field(
        None,
        description="Prompt sets to generate; default: ['embedded'] (held-out embedded-world prompts) on the "
        "embedded styles, else ['in-style', 'report', 'general'].",
    )
    prompts: int = Field(24, ge=1, le=10_000, description="Prompts per set (spread over the set).")
    seeds_per_prompt: int = Field(1, ge=1, le=64, description="Seeds per prompt (0, 1, ...; embedded: held-out).")
    batch_size: int = Field(16, ge=1, le=1024, description="Images generated per pipeline call.")
    adapter_scale: float = Field(
        1.0,
        ge=0.0,
        le=4.0,
        description="Strength the adapter is evaluated at (1.0 = as trained; LoRA, DoRA, LoHa, LoKr), "
        "without retraining.",
    )
    adapter_scales: list[float] = Field(
        default_factory=list,
        max_length=32,
        description="Also score the adapter at these strengths against the same base images "
        "(eval/scales.json, plotted in the report), e.g. [0.25, 0.5, 0.75, 1.0, 1.25, 1.5].",
    )

    @field_validator("adapter_scales")
    @classmethod
    def _scales_in_range(cls, value: list[float]) -> list[float]:
        return check_adapter_scales(value)

    @model_validator(mode="after")
    def _extra_keys_are_metric_tables(self) -> "EvalSection":
        for key, value in (self.model_extra or {}).items():
            # the key travels in ``ctx``: format_validation_error adds it to the error's location
            if not isinstance(value, dict):
                valid = ", ".join(type(self).model_fields)
                raise PydanticCustomError(
                    UNKNOWN_KEY,
                    "unknown key (valid: {valid}, or an [eval.METRIC] options table)",
                    {"key": key, "valid": valid},
                )
            if key not in self.metric_names:
                raise PydanticCustomError(
                    UNLISTED_METRIC,
                    "an [eval.{key}] options table for a metric not listed in eval.metrics {listed}",
                    {"key": key, "listed": str(self.metric_names)},
                )
        return self

    @property
    def metric_names(self) -> list[str]:
        """The metrics to run, with the ``embedded_probes`` shorthand folded in."""
        names = list(self.metrics)
        if self.embedded_probes and "embedded_probes" not in names:
            names.append("embedded_probes")
        return names

    def metric_options(self, name: str) -> dict[str, Any]:
        """The ``[eval.NAME]`` table (empty when the recipe has none)."""
        return dict((self.model_extra or {}).get(name, {}))


class LogSection(Section):
    """Experiment trackers, through accelerate: logs go to ``<run_dir>/logs/``."""

    trackers: list[TrackerName] = Field(
        default_factory=list, description="Trackers that receive every logged step: tensorboard, wandb."
    )
    project: str | None = Field(None, description="Tracker project name; defaults to the run name.")
    wandb_mode: Literal["offline", "online"] = Field("offline", description="W&B mode (offline: sync later).")

    @field_validator("trackers")
    @classmethod
    def _once_each(cls, names: list[TrackerName]) -> list[TrackerName]:
        return list(dict.fromkeys(names))


class PluginsSection(Section):
    """Local plugin modules (dotted names or .py paths relative to the recipe)."""

    modules: list[str] = Field(default_factory=list)


class Recipe(Section):
    """A whole recipe."""

    run: RunSection = Field(default_factory=RunSection)
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection
    method: MethodSection
    train: TrainSection = Field(default_factory=TrainSection)
    ema: EmaSection = Field(default_factory=EmaSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    sample: SampleSection = Field(default_factory=SampleSection)
    validation: ValidationSection = Field(default_factory=ValidationSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    log: LogSection = Field(default_factory=LogSection)
    plugins: PluginsSection = Field(default_factory=PluginsSection)

    @model_validator(mode="after")
    def _warmup_within_steps(self) -> "Recipe":
        if self.train.lr_warmup_steps > self.train.steps:
            raise ValueError(
                f"train.lr_warmup_steps ({self.train.lr_warmup_steps}) exceeds train.steps ({self.train.steps})"
            )
        return self
