"""The component contracts every plugin implements: datasets, methods, samplers, metrics, named bases,
model families.

A component is a small class with a stable ``name``, a one-line ``description`` and a
nested pydantic ``Options`` model (``extra="forbid"``), so a recipe's ``options`` table is
validated by the component that owns it and a typo is an error naming the key.
Plugins register component *classes*; the core instantiates them with validated options.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    import torch
    from diffusers import DiffusionPipeline, SchedulerMixin
    from PIL import Image

    from adaptkit.evaluation.context import EvalContext, Figure
    from adaptkit.models import SDComponents
    from adaptkit.recipe import ModelSection, TrainSection


class Options(BaseModel):
    """Base for every component's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """Common shape of all components."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()


# --------------------------------------------------------------------------- datasets


@dataclass
class Example:
    """One training example: an RGB image and one or more captions.

    ``key`` is a stable identity (used for deduplication, held-out splits and caching).
    """

    image: "Image.Image"
    captions: list[str]
    key: str
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetAdapter(Component):
    """Maps one dataset (a Hub id or a local copy) to :class:`Example` rows.

    Adapters only *map*; resizing, cropping, flipping and normalising is done by one shared
    image pipeline (:mod:`adaptkit.data.pipeline`). An adapter may also say how a run on it is
    evaluated: :attr:`default_prompt_sets`, :meth:`evaluation_pairs` for a prompt set of its own,
    and :meth:`target_style` for metrics that judge a named style.
    """

    #: The evaluation prompt sets of a run whose ``[eval] prompt_sets`` is empty.
    default_prompt_sets: ClassVar[tuple[str, ...]] = ("in-style", "report", "general")

    def evaluation_pairs(self, prompt_set: str, prompts: int, seeds_per_prompt: int) -> list[tuple[str, int]] | None:
        """``(prompt, seed)`` pairs of ``prompt_set`` when this dataset defines that set itself, else None.

        ``prompts`` × ``seeds_per_prompt`` is how many pairs the recipe's ``[eval]`` asks for.
        """
        return None

    def target_style(self) -> str | None:
        """The name of the style a run on this dataset aims at, for metrics that judge it (None: unnamed)."""
        return None

    @abstractmethod
    def load(self, split: str = "train") -> "StyleDataset":
        """Load the dataset and return a random-access sequence of examples."""


class StyleDataset(ABC):
    """A random-access sequence of :class:`Example` with load statistics."""

    name: str
    skipped: int = 0

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Example: ...

    def blocks(self) -> list[int] | None:
        """Per example, the block it is read with (a tar shard, a parquet row group), when examples
        of one block read cheaply together; None (the default) when every example reads alike.
        Training then draws an epoch block by block (:class:`~adaptkit.training.block_order.BlockOrder`)."""
        return None

    def sizes(self) -> list[tuple[int, int]] | None:
        """Per example, its image's (width, height) as decoded, when known without decoding it (from a
        scan of the headers, or the shards' metadata); None (the default) otherwise. Aspect-ratio
        buckets are then planned without decoding every image before the first step."""
        return None


# --------------------------------------------------------------------------- methods


class Method(Component):
    """An adaptation method: which weights train, and how they are saved and loaded.

    The trainer calls, in order: :meth:`prepare` (freeze the base, inject adapters, return the
    trainable parameters), then at the end :meth:`save` into ``run_dir / "adapter"``.
    :meth:`apply` puts a saved result onto a pipeline for sampling.
    """

    #: True when the method trains the text encoder (text-embedding caching is then refused).
    trains_text_encoder: bool = False
    #: True when the method trains the base model's own weights (refused on a quantised base).
    trains_base_weights: ClassVar[bool] = False

    @abstractmethod
    def prepare(self, components: "SDComponents") -> list["torch.nn.Parameter"]:
        """Freeze what must not train, add adapter layers, return the trainable parameters."""

    @abstractmethod
    def save(self, components: "SDComponents", out_dir: Path) -> None:
        """Write the trained result (adapter weights or a whole pipeline) into ``out_dir``."""

    @abstractmethod
    def apply(self, pipeline: "DiffusionPipeline", saved_dir: Path) -> "DiffusionPipeline":
        """Return ``pipeline`` with the result saved in ``saved_dir`` applied."""

    def trainable_state_dict(self, components: "SDComponents") -> dict[str, "torch.Tensor"]:
        """The trainable weights by name (used by checkpoints and EMA).

        The tensors share storage with the parameters (no copies): clone them to keep a snapshot.
        An override must keep that property, since :meth:`load_trainable_state_dict` writes through it.
        """
        return {
            f"{prefix}.{name}": param.detach()
            for prefix, module in components.parts().items()
            for name, param in module.named_parameters()
            if param.requires_grad
        }

    def load_trainable_state_dict(self, components: "SDComponents", state: dict[str, "torch.Tensor"]) -> None:
        """Copy ``state`` (as from :meth:`trainable_state_dict`) into the trainable weights, in place.

        The names and shapes must match exactly; otherwise a one-line :class:`UserError` says what differs.
        """
        import torch

        from adaptkit.errors import UserError

        current = self.trainable_state_dict(components)
        missing, unexpected = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        if missing or unexpected:
            raise UserError(
                f"method {self.name}: saved trainable weights do not match the model: {len(missing)} missing"
                f"{f' (e.g. {missing[0]})' if missing else ''}, {len(unexpected)} unexpected"
                f"{f' (e.g. {unexpected[0]})' if unexpected else ''}"
            )
        with torch.no_grad():
            for name, target in current.items():
                if tuple(state[name].shape) != tuple(target.shape):
                    raise UserError(
                        f"method {self.name}: saved weight {name} has shape {tuple(state[name].shape)}, "
                        f"the model's has {tuple(target.shape)}"
                    )
                target.copy_(state[name])


# --------------------------------------------------------------------------- samplers


class Sampler(Component):
    """Builds a diffusers scheduler from the base model's scheduler config plus options."""

    #: The training objectives (:attr:`ModelFamily.objective`) of the families this sampler can drive.
    objectives: ClassVar[tuple[str, ...]] = ("ddpm",)

    @abstractmethod
    def build(self, scheduler_config: dict[str, Any]) -> "SchedulerMixin":
        """Return a scheduler made with ``SchedulerClass.from_config(scheduler_config, ...)``."""


# --------------------------------------------------------------------------- named base models


class BaseModels(Component):
    """Base models a recipe names ``<name>:<model>`` in ``model.base`` (``embedded:tiny-sd``, ``testing:sd15-random``).

    ``name`` is the part before the colon. :meth:`locate` returns a diffusers pipeline folder,
    which then loads like any local folder.
    """

    @abstractmethod
    def models(self) -> list[str]:
        """The model names this source holds (listed in the error for an unknown one)."""

    @abstractmethod
    def locate(self, model: str) -> Path:
        """The diffusers pipeline folder of ``model`` (one of :meth:`models`), built on first use if need be."""


# --------------------------------------------------------------------------- optimizers


class Optimizer(Component):
    """An optimizer a recipe names with ``train.optimizer``; its own settings are ``[train.optimizer_options]``.

    ``train.learning_rate``, ``adam_beta1``/``adam_beta2``, ``adam_epsilon`` and ``weight_decay`` are the
    shared settings each reads where it has them. Its state must round-trip through
    ``state_dict``/``load_state_dict`` (checkpoints resume bit-exactly).
    """

    #: The pip requirement (and module) that provides it, named when it is missing (None: torch's own).
    requires: ClassVar[str | None] = None
    #: Whether it computes the same update on DeepSpeed ZeRO's flat partitions of the weights as on the
    #: weights themselves (elementwise updates do; factored or globally-scaled ones do not).
    runs_on_flat_partitions: ClassVar[bool] = False

    def unavailable(self) -> str | None:
        """Why it cannot be built here (its ``requires`` is not installed), or None; checked when the
        recipe is resolved, before any model loads."""
        import importlib.util

        if self.requires is None or importlib.util.find_spec(self.requires) is not None:
            return None
        return (
            f"train.optimizer = {self.name!r} needs {self.requires}, which is not installed; "
            f"pip install '{self.requires}' (or 'adaptkit[optimizers]')"
        )

    @abstractmethod
    def build(self, params: "list[torch.nn.Parameter]", train: "TrainSection") -> "torch.optim.Optimizer":
        """The optimizer over ``params``, ready to step (in training mode)."""

    @contextmanager
    def evaluating(self, optimizer: "torch.optim.Optimizer", params: "list[torch.nn.Parameter]") -> "Iterator[None]":
        """While the weights are read (samples, the saved result), with ``params`` the trained ones: for
        an optimizer whose training weights are not the ones to use (schedule-free's), put those in
        place and restore the training weights exactly afterwards. Default: nothing to do."""
        yield


# --------------------------------------------------------------------------- model families


@dataclass
class Conditioning:
    """What a denoiser is conditioned on for one batch of captions.

    ``hidden_states`` go to the denoiser's cross-attention; ``added`` holds the extra keyword
    inputs a family's denoiser takes (diffusers' ``added_cond_kwargs``, e.g. pooled text embeddings
    and time ids), or None.
    """

    hidden_states: "torch.Tensor"
    added: dict[str, "torch.Tensor"] | None = None

    def with_added(self, extra: dict[str, "torch.Tensor"]) -> "Conditioning":
        """This conditioning with ``extra`` denoiser inputs added (itself when there are none)."""
        if not extra:
            return self
        return Conditioning(self.hidden_states, {**(self.added or {}), **extra})

    def denoiser_kwargs(self) -> dict[str, Any]:
        """The keyword arguments beyond ``encoder_hidden_states`` the denoiser is called with."""
        return {"added_cond_kwargs": self.added} if self.added else {}

    def call_unet(self, unet: "torch.nn.Module", noisy: "torch.Tensor", timesteps: "torch.Tensor") -> "torch.Tensor":
        """A diffusers UNet's prediction for ``noisy`` latents at ``timesteps`` under this conditioning."""
        return unet(noisy, timesteps, self.hidden_states, **self.denoiser_kwargs(), return_dict=False)[0]


@dataclass(frozen=True)
class KohyaModule:
    """One module of a family's kohya / LyCORIS file layout: its name after ``lora_unet_`` and the
    denoiser modules (diffusers paths) it stands for.

    Several ``paths`` make a fused module (Flux's ``double_blocks_0_img_attn_qkv`` is ``to_q``,
    ``to_k`` and ``to_v``): its output rows are theirs concatenated in this order, and ``widths``
    gives each one's output size, so a member without an adapter is written as zero rows.
    """

    name: str
    paths: tuple[str, ...]
    widths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.paths) > 1 and (self.widths is None or len(self.widths) != len(self.paths)):
            raise ValueError(f"KohyaModule {self.name}: a fused module needs one width per path")


class ModelFamily(Component):
    """One denoiser architecture (``sd1``, a plugin's ``sdxl``…): how its bases are recognised, loaded
    and assembled into a sampling pipeline.

    A recipe's ``[model] family = "auto"`` takes the family whose :meth:`recognises` accepts the
    base's ``model_index.json`` (a folder or Hub id) or, for a single file, whose
    :meth:`recognises_keys` accepts its tensor names.
    """

    #: The diffusers pipeline class names (``model_index.json``'s ``_class_name``) this family loads.
    pipeline_class_names: ClassVar[tuple[str, ...]] = ()
    #: True for the family assumed when nothing about a base can be read before loading it (a pickle
    #: checkpoint, a Hub id not in the local cache while offline).
    fallback: ClassVar[bool] = False
    #: The training objective: ``"ddpm"`` (noise / v-prediction) or ``"flow"`` (rectified flow matching).
    objective: ClassVar[str] = "ddpm"
    #: The original single-file layout of each text encoder: ``name -> (layout, key prefix)`` with layout
    #: ``"clip"`` or ``"openclip"`` (:mod:`adaptkit.interop.original_layout`); None: no single-file export.
    single_file_text_encoders: ClassVar[dict[str, tuple[str, str]] | None] = None
    #: The text encoders a text-encoder LoRA adapts (None: all of them).
    lora_text_encoders: ClassVar[tuple[str, ...] | None] = None
    #: Whether its adapters export to (and import from) the kohya / LyCORIS key layout.
    kohya_layout: ClassVar[bool] = True
    #: ``(ss_base_model_version, modelspec.architecture)``: how sd-scripts' header keys name the base in
    #: exported files (A1111, Forge and ComfyUI show them).
    model_spec: ClassVar[tuple[str, str]] = ("sd_v1", "stable-diffusion-v1")
    #: The resolution its bases are trained at (``adaptkit bench --family``'s default).
    native_resolution: ClassVar[int] = 512
    #: The denoiser's block classes FSDP shards as units (each all-gathered for its own forward), when
    #: the accelerate config names none; classes a base does not have are passed over.
    fsdp_blocks: ClassVar[tuple[str, ...]] = (
        "CrossAttnDownBlock2D",
        "DownBlock2D",
        "UNetMidBlock2DCrossAttn",
        "CrossAttnUpBlock2D",
        "UpBlock2D",
    )
    #: ``(full-size, quick)`` named bases with random weights that ``adaptkit bench --family`` trains
    #: (``--quick`` the second); None when the family has none.
    bench_models: ClassVar[tuple[str, str] | None] = None

    def recognises(self, model_index: dict[str, Any], component_config: "Callable[[str], dict[str, Any]]") -> bool:
        """Whether a diffusers folder with this ``model_index.json`` holds this family's architecture.

        ``component_config(name)`` reads one component's ``config.json`` (``"text_encoder"``,
        ``"unet"``…; ``{}`` when it cannot be read), for families that share a pipeline class.
        """
        return model_index.get("_class_name") in self.pipeline_class_names

    def recognises_keys(self, keys: "Iterable[str]") -> bool:
        """Whether a single-file checkpoint with these tensor names holds this family's architecture."""
        return False

    @abstractmethod
    def pipeline_class(self) -> type:
        """The diffusers pipeline class that loads this family's bases (``from_pretrained``, ``from_single_file``)."""

    @abstractmethod
    def assemble(self, components: "SDComponents", scheduler: "SchedulerMixin") -> Any:
        """A sampling pipeline of ``components`` (shared modules, no copies) driven by ``scheduler``."""

    @abstractmethod
    def condition(
        self, text_encoders: "Sequence[torch.nn.Module]", input_ids: "Sequence[torch.Tensor]"
    ) -> Conditioning:
        """The denoiser's text conditioning for tokenized captions: one ids tensor per text encoder,
        in :meth:`SDComponents.text_encoders` order (the encoders may be the trained,
        accelerator-wrapped ones; gradients flow when they train). Cached per caption when the
        text encoders are frozen, so it must depend on the captions only."""

    def load_options(self, model: "ModelSection", model_index: dict[str, Any] | None) -> dict[str, Any]:
        """Extra keyword arguments for the pipeline class's ``from_pretrained``/``from_single_file``
        (e.g. an absent text encoder as None); ``model_index`` is the base's, when it has one."""
        return {}

    def training_scheduler(self, scheduler_config: dict[str, Any]) -> "SchedulerMixin":
        """The scheduler training adds noise with, from the base's scheduler config (default: DDPM)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(scheduler_config)

    def bind(self, components: "SDComponents") -> None:
        """Called once the base is loaded, for a family whose conditioning depends on the model
        (e.g. the width of an absent text encoder's zeros); default: nothing."""

    def predict(
        self, denoiser: "torch.nn.Module", noisy: "torch.Tensor", timesteps: "torch.Tensor", conditioning: Conditioning
    ) -> "torch.Tensor":
        """The denoiser's output for noisy latents at ``timesteps`` (default: a diffusers UNet's call)."""
        return conditioning.call_unet(denoiser, noisy, timesteps)

    def image_conditioning(self, geometry: "torch.Tensor", dtype: "torch.dtype") -> dict[str, "torch.Tensor"]:
        """Extra denoiser inputs that depend on each training image rather than its caption.

        ``geometry`` is (batch, 6): original height and width, crop top and left, target height
        and width, in pixels, as the data pipeline and the aspect-ratio buckets made the image.
        Merged into :attr:`Conditioning.added`. Default: none.
        """
        return {}

    def shift_mu(self, latents: "torch.Tensor") -> float | None:
        """For a flow family whose scheduler shifts by resolution (``use_dynamic_shifting``): the μ
        for a batch of ``latents`` (as the pipeline passes to ``set_timesteps``), so the training σ
        are shifted as sampling's are. Default None: the scheduler's fixed ``shift`` only."""
        return None

    def kohya_modules(self, denoiser_config: dict[str, Any]) -> "list[KohyaModule] | None":
        """The denoiser's modules in the kohya / LyCORIS layout, for a denoiser configured by
        ``denoiser_config``; an adapted module not listed cannot be exported to it.

        Default None: each module is named by its diffusers path with dots as underscores (and a
        UNet's original-layout names are read too).
        """
        return None


# --------------------------------------------------------------------------- metrics


class Metric(Component):
    """Scores paired generations (against prompts, a style reference set, or the base images).

    The evaluation builds one :class:`adaptkit.evaluation.EvalContext` per run and calls
    :meth:`compute` on every configured metric; a metric whose model is not available raises
    :class:`adaptkit.evaluation.MetricUnavailable` and the others still run.
    """

    @classmethod
    def applies_to(cls, dataset_adapter: str) -> bool:
        """Whether an evaluation whose ``[eval]`` lists no metrics runs this one on a run of ``dataset_adapter``."""
        return True

    @abstractmethod
    def compute(self, context: "EvalContext") -> list["Figure"]:
        """Return this metric's figures, each with a paired-bootstrap 95% CI over prompts.

        Raise :class:`adaptkit.evaluation.MetricUnavailable` (one line naming the missing model
        and how to provide a local copy) when the metric cannot run here.
        """
