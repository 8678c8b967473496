"""Contract test mixins: subclass one in a test file to check a component behaves as adaptkit expects.

Each mixin is a battery of pytest tests over one component class. A plugin author sets the class
attributes (and overrides the fixtures a mixin asks for) in a class whose name starts with ``Test``::

    from adaptkit.testing.contracts import MethodContract
    from my_plugin import MyMethod

    class TestMyMethod(MethodContract):
        component = MyMethod
        options = {"rank": 2}
        bad_options = [({"rank": 0}, "method.options.rank")]

The fixtures they use (``tiny_model_dir``) come from adaptkit's pytest plugin
(:mod:`adaptkit.testing.pytest_plugin`), loaded automatically once adaptkit is installed.
Every test is named ``test_contract_*`` so a failure says which promise was broken. The model-family
contract, which trains, resumes and exports, is :class:`adaptkit.testing.family_contract.ModelFamilyContract`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from adaptkit.component import Component, Example
from adaptkit.errors import UserError
from adaptkit.testing.tiny_steps import (
    ddim_scheduler,
    load_tiny,
    sample_images,
    train_steps,
    unet_output,
)

if TYPE_CHECKING:
    from adaptkit.evaluation import EvalContext
    from adaptkit.models import SDComponents

#: A component name: lower case, digits, ``-`` or ``_`` (what a recipe can spell without quoting surprises).
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: An options key no component declares: it must be rejected as unknown.
UNKNOWN_KEY = "no_such_option_in_any_component"


def build(component: type[Component], options: dict[str, Any], key: str) -> Component:
    """Instantiate ``component`` with ``options`` exactly as a recipe does; bad options raise :class:`UserError`.

    ``key`` is where the recipe names the component (``"method.name"``); messages name
    ``<section>.options.<field>`` as the user would see them.
    """
    from adaptkit.plugins import Registry
    from adaptkit.resolve import build_component

    registry: Registry[Any] = Registry("component", Component)
    registry.add(component, "contract-test")
    errors: list[str] = []
    built = build_component(registry, component.name, options, "recipe.toml", key, errors)
    if built is None:
        raise UserError.collect(errors)
    return built


class RegisteredContract:
    """What every registered class promises: a name, a one-line description, one registration."""

    #: The component class under test (required).
    component: ClassVar[type[Component]]
    #: Plugin modules (dotted names or ``.py`` paths) to load besides installed ones, as ``[plugins] modules``.
    plugin_modules: ClassVar[list[str]] = []
    #: Which registry holds it (set by each mixin).
    kind: ClassVar[str]

    def test_contract_name_and_description(self) -> None:
        assert NAME_PATTERN.match(getattr(self.component, "name", "") or ""), (
            f"{self.component.__name__}.name must match {NAME_PATTERN.pattern}"
        )
        assert self.component.description.strip(), f"{self.component.__name__} needs a one-line description"
        assert "\n" not in self.component.description.strip()

    def test_contract_registered_once_in_the_plugin_manager(self) -> None:
        from adaptkit.plugins import get_plugin_manager

        registries = get_plugin_manager(self.plugin_modules, source="contract test").collect()  # clashes raise
        registry = registries.by_kind()[self.kind]
        assert self.component.name in registry, registry.unknown_message(self.component.name)
        assert registry.get(self.component.name).cls is self.component


class ComponentContract(RegisteredContract):
    """What every component a recipe configures promises besides: validated options."""

    #: Valid options used to build it (a recipe's ``options`` table).
    options: ClassVar[dict[str, Any]] = {}
    #: ``(options, text the UserError must contain)`` pairs of invalid values.
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = []
    #: Where a recipe names it (set by each mixin).
    recipe_key: ClassVar[str]

    def make(self, **overrides: Any) -> Any:
        """The component built from :attr:`options` updated with ``overrides``."""
        return build(self.component, {**self.options, **overrides}, self.recipe_key)

    def test_contract_options_build_and_are_frozen(self) -> None:
        built = self.make()
        assert isinstance(built, self.component)
        assert isinstance(built.options, self.component.Options)
        assert built.options.model_config.get("extra") == "forbid", "Options must subclass adaptkit.Options"

    def test_contract_unknown_option_is_a_user_error(self) -> None:
        with pytest.raises(UserError) as error:
            self.make(**{UNKNOWN_KEY: 1})
        section = self.recipe_key.rsplit(".", 1)[0]
        assert f"{section}.options.{UNKNOWN_KEY}: unknown key" in str(error.value)

    def test_contract_bad_option_values_are_user_errors(self) -> None:
        for options, expected in self.bad_options:
            with pytest.raises(UserError) as error:
                self.make(**options)
            assert expected in str(error.value), f"{options}: {error.value}"


# --------------------------------------------------------------------------- datasets


class DatasetAdapterContract(ComponentContract):
    """A dataset adapter: loads rows of (RGB image, non-empty captions, stable key); bad sources fail clearly.

    Override the ``dataset_options`` fixture to return options pointing at a small local dataset
    (written in the test, e.g. with :mod:`adaptkit.testing.datasets`), and ``broken_options`` to
    return options that validate but cannot load (default: ``source`` pointing at a missing path).
    """

    kind = "datasets"
    recipe_key = "data.adapter"
    #: Minimum rows the local dataset of ``dataset_options`` yields.
    min_rows: ClassVar[int] = 1

    @pytest.fixture(autouse=True)
    def _offline_datasets_cache(self, tmp_path: Path) -> Iterator[None]:
        from adaptkit.testing.datasets import isolated_datasets

        with isolated_datasets(tmp_path / "hf-cache"):
            yield

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError("override the dataset_options fixture: options for a small local dataset")

    @pytest.fixture
    def broken_options(self, dataset_options: dict[str, Any], tmp_path: Path) -> dict[str, Any] | None:
        if "source" not in self.component.Options.model_fields:
            return None
        return {**dataset_options, "source": str(tmp_path / "no-such-dataset")}

    def test_contract_rows_are_rgb_images_with_captions(self, dataset_options: dict[str, Any]) -> None:
        dataset = self.make(**dataset_options).load()
        assert len(dataset) >= self.min_rows
        keys = set()
        for index in range(len(dataset)):
            example = dataset[index]
            assert isinstance(example, Example)
            assert example.image.mode == "RGB" and min(example.image.size) > 0
            assert example.captions and all(isinstance(c, str) and c.strip() for c in example.captions)
            assert isinstance(example.key, str) and example.key
            keys.add(example.key)
        assert len(keys) == len(dataset), "keys must identify examples"

    def test_contract_loading_twice_gives_the_same_rows(self, dataset_options: dict[str, Any]) -> None:
        first, second = self.make(**dataset_options).load(), self.make(**dataset_options).load()
        assert [first[i].key for i in range(len(first))] == [second[i].key for i in range(len(second))]
        assert [first[i].captions for i in range(len(first))] == [second[i].captions for i in range(len(second))]

    def test_contract_a_broken_source_is_a_one_line_user_error(self, broken_options: dict[str, Any] | None) -> None:
        if broken_options is None:
            pytest.skip(f"{self.component.name} has no source that could be missing")
        with pytest.raises(UserError) as error:
            self.make(**broken_options).load()
        assert len(error.value.lines) == 1 and error.value.lines[0].strip()


# --------------------------------------------------------------------------- methods


class MethodContract(ComponentContract):
    """A method: prepare makes trainable float32 parameters, training changes them, save + apply reproduces."""

    kind = "methods"
    recipe_key = "method.name"
    #: Optimizer steps run by the training test.
    steps: ClassVar[int] = 2
    #: Learning rate of that test (large, so a few steps on the tiny model visibly change it).
    learning_rate: ClassVar[float] = 1e-2
    #: Words the prompts of the training and sampling steps end with (a textual-inversion token).
    prompt_words: ClassVar[str] = ""

    def prompts(self) -> tuple[str, str]:
        """``(training prompt, sampling prompt)`` of the tiny steps, with :attr:`prompt_words`."""
        from adaptkit.testing.tiny_steps import SAMPLE_PROMPT, TRAIN_PROMPT

        return tuple(f"{p} {self.prompt_words}".strip() for p in (TRAIN_PROMPT, SAMPLE_PROMPT))  # type: ignore[return-value]

    @pytest.fixture
    def base_components(self, tiny_model_dir: Path) -> "SDComponents":
        return load_tiny(tiny_model_dir)

    def test_contract_prepare_returns_exactly_the_trainable_parameters(self, base_components: "SDComponents") -> None:
        import torch

        params = self.make().prepare(base_components)
        modules = (base_components.unet, base_components.text_encoder, base_components.vae)
        trainable = [p for module in modules for p in module.parameters() if p.requires_grad]
        assert params, "prepare() returned no parameters"
        assert {id(p) for p in params} == {id(p) for p in trainable}
        assert all(p.dtype == torch.float32 for p in params)
        assert not any(p.requires_grad for p in base_components.vae.parameters()), "the VAE must stay frozen"

    def test_contract_training_changes_the_weights(self, base_components: "SDComponents") -> None:
        import torch

        method = self.make()
        params = method.prepare(base_components)
        before = {k: v.clone() for k, v in method.trainable_state_dict(base_components).items()}
        assert len(before) == len(params)
        train_prompt, sample_prompt = self.prompts()
        output = unet_output(base_components, sample_prompt)
        train_steps(base_components, params, self.steps, self.learning_rate, train_prompt)
        after = method.trainable_state_dict(base_components)
        assert any(not torch.equal(before[k], after[k]) for k in before), "no trainable weight changed"
        changed = (unet_output(base_components, sample_prompt) - output).abs().max().item()
        assert changed > 1e-6, "the UNet's output did not change"

    def test_contract_trainable_state_round_trip(self, base_components: "SDComponents") -> None:
        import torch

        method = self.make()
        params = method.prepare(base_components)
        snapshot = {k: v.clone() for k, v in method.trainable_state_dict(base_components).items()}
        train_steps(base_components, params, 1, self.learning_rate, self.prompts()[0])
        method.load_trainable_state_dict(base_components, snapshot)
        restored = method.trainable_state_dict(base_components)
        assert all(torch.equal(snapshot[k], restored[k]) for k in snapshot)
        first = next(iter(snapshot))
        with pytest.raises(UserError, match="missing"):
            method.load_trainable_state_dict(base_components, {k: v for k, v in snapshot.items() if k != first})
        with pytest.raises(UserError, match="shape"):
            method.load_trainable_state_dict(base_components, {**snapshot, first: snapshot[first].new_zeros(3)})

    def test_contract_save_then_apply_reproduces_the_trained_model(
        self, base_components: "SDComponents", tiny_model_dir: Path, tmp_path: Path
    ) -> None:
        import numpy as np

        method = self.make()
        train_prompt, sample_prompt = self.prompts()
        params = method.prepare(base_components)
        train_steps(base_components, params, self.steps, self.learning_rate, train_prompt)
        trained = sample_images(base_components.pipeline(ddim_scheduler(base_components)), prompt=sample_prompt)
        method.save(base_components, tmp_path / "adapter")
        assert any((tmp_path / "adapter").rglob("*.safetensors")), "save() must write safetensors"
        assert not any((tmp_path / "adapter").rglob("*.bin")), "save() must not write pickles"
        fresh = load_tiny(tiny_model_dir)
        base_images = sample_images(fresh.pipeline(ddim_scheduler(fresh)), prompt=sample_prompt)
        applied = method.apply(fresh.pipeline(ddim_scheduler(fresh)), tmp_path / "adapter")
        assert np.abs(sample_images(applied, prompt=sample_prompt) - trained).max() <= 1e-5, (
            "the applied result differs from the trained model"
        )
        assert np.abs(base_images - trained).max() > 1e-4, "training did not change the images"

    def test_contract_apply_on_an_empty_folder_is_a_user_error(self, tiny_model_dir: Path, tmp_path: Path) -> None:
        fresh = load_tiny(tiny_model_dir)
        with pytest.raises(UserError) as error:
            self.make().apply(fresh.pipeline(ddim_scheduler(fresh)), tmp_path)
        assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


# --------------------------------------------------------------------------- samplers


class SamplerContract(ComponentContract):
    """A sampler: builds a diffusers scheduler from the base config that generates right-sized finite images."""

    kind = "samplers"
    recipe_key = "sample.sampler"
    #: Inference steps of the generation test.
    inference_steps: ClassVar[int] = 3

    @pytest.fixture(scope="class")
    def base_components(self, tiny_model_dir: Path) -> "SDComponents":
        return load_tiny(tiny_model_dir)

    def test_contract_builds_a_scheduler_from_the_base_config(self, base_components: "SDComponents") -> None:
        from diffusers import SchedulerMixin

        config = dict(base_components.scheduler_config)
        scheduler = self.make().build(config)
        assert isinstance(scheduler, SchedulerMixin)
        assert scheduler.config.num_train_timesteps == config["num_train_timesteps"]
        assert scheduler.config.beta_schedule == config["beta_schedule"], "the base model's betas must be kept"
        assert config == dict(base_components.scheduler_config), "build() must not modify the config it is given"
        scheduler.set_timesteps(self.inference_steps)
        assert len(scheduler.timesteps) >= self.inference_steps

    def test_contract_generates_images_of_the_right_size(self, base_components: "SDComponents") -> None:
        import numpy as np
        import torch

        pipeline = base_components.pipeline(self.make().build(dict(base_components.scheduler_config)))
        generator = torch.Generator().manual_seed(0)
        images = pipeline(
            ["a red star", "a blue cat"],
            num_inference_steps=self.inference_steps,
            guidance_scale=2.0,
            height=64,
            width=48,
            generator=generator,
            output_type="np",
        ).images
        assert images.shape == (2, 64, 48, 3)
        assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


# --------------------------------------------------------------------------- metrics


class MetricContract(ComponentContract):
    """A metric: from a small evaluation context it returns its declared figures, all finite.

    Set ``figures`` to the figure names :meth:`adaptkit.Metric.compute` returns; override the
    ``eval_context`` fixture when the metric needs more than a few paired pattern images
    (e.g. ``options`` pointing at a local model).
    """

    kind = "metrics"
    recipe_key = "eval.metrics"
    #: The names of the figures the metric returns (required).
    figures: ClassVar[set[str]]

    @pytest.fixture
    def eval_context(self) -> "EvalContext":
        return small_eval_context()

    def test_contract_returns_its_declared_figures_with_finite_values(self, eval_context: "EvalContext") -> None:
        from adaptkit.evaluation import Figure

        figures = self.make().compute(eval_context)
        assert isinstance(figures, list) and all(isinstance(f, Figure) for f in figures), figures
        assert {f.name for f in figures} == set(self.figures)
        for figure in figures:
            assert figure.metric == self.component.name
            assert all(math.isfinite(v) for v in (figure.value, figure.ci_low, figure.ci_high)), figure
            assert figure.ci_low <= figure.value <= figure.ci_high, figure
            assert figure.n >= 1 and figure.description.strip()


def small_eval_context(count: int = 4, size: int = 64) -> "EvalContext":
    """``count`` pairs of distinct 64 px pattern images (two seeds per prompt) and ``count`` references."""
    import torch

    from adaptkit.evaluation import EvalContext, EvalPairs
    from adaptkit.testing.datasets import pattern_image

    pairs = EvalPairs(
        prompts=[f"a pattern, plate {i // 2}" for i in range(count)],
        sets=["in-style"] * count,
        seeds=[i % 2 for i in range(count)],
        base=[pattern_image(i, (size, size)) for i in range(count)],
        adapted=[pattern_image(i + 7, (size, size)) for i in range(count)],
    )
    references = [pattern_image(20 + i, (size, size)) for i in range(count)]
    return EvalContext(pairs=pairs, references=references, style=None, device=torch.device("cpu"))


__all__ = [
    "ComponentContract",
    "RegisteredContract",
    "DatasetAdapterContract",
    "MethodContract",
    "MetricContract",
    "SamplerContract",
    "build",
    "small_eval_context",
]
