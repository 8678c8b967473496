"""Every contract of adaptkit.testing.contracts over every built-in dataset adapter, method and sampler.

The same mixins third-party plugins use (see plugins/*/tests); a contract that a toy component
breaks on purpose fails here too, so the contracts can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adaptkit.builtins.datasets import (
    HubAdapter,
    ImageFolderAdapter,
    NarutoAdapter,
    NewYorkerAdapter,
    PokemonAdapter,
    ShardsAdapter,
    SimpsonsAdapter,
)
from adaptkit.builtins.families.sd1 import StableDiffusion1
from adaptkit.builtins.families.sd2 import StableDiffusion2
from adaptkit.builtins.families.sd3 import StableDiffusion3
from adaptkit.builtins.families.sdxl import StableDiffusionXL
from adaptkit.builtins.methods import FullMethod, LohaMethod, LoraMethod
from adaptkit.builtins.samplers import DDIMSampler, DPMSolverSampler, PNDMSampler
from adaptkit.component import Metric, Sampler
from adaptkit.embedded.dataset import EmbeddedStylesAdapter
from adaptkit.evaluation import Figure
from adaptkit.testing import datasets as local
from adaptkit.testing.contracts import (
    DatasetAdapterContract,
    MethodContract,
    MetricContract,
    SamplerContract,
    small_eval_context,
)
from adaptkit.testing.family_contract import ModelFamilyContract

# --------------------------------------------------------------------------- datasets


class TestNewYorker(DatasetAdapterContract):
    component = NewYorkerAdapter
    bad_options = [({"caption": 3}, "data.options.caption")]

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(local.write_newyorker(tmp_path / "ny").path)}


class TestPokemon(DatasetAdapterContract):
    component = PokemonAdapter
    bad_options = [({"language": "fr"}, "data.options.language")]

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(local.write_pokemon(tmp_path / "pokemon").path)}


class TestNaruto(DatasetAdapterContract):
    component = NarutoAdapter

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(local.write_naruto(tmp_path / "naruto").path)}


class TestSimpsons(DatasetAdapterContract):
    component = SimpsonsAdapter

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(local.write_simpsons(tmp_path / "simpsons").path)}


class TestHub(DatasetAdapterContract):
    component = HubAdapter
    options = {"path": "lambdalabs/naruto-blip-captions"}
    bad_options = [({"path": None}, "data.options.path")]

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": "lambdalabs/naruto-blip-captions", "source": str(local.write_naruto(tmp_path / "n").path)}


class TestImageFolder(DatasetAdapterContract):
    component = ImageFolderAdapter
    options = {"source": "."}

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"source": str(local.write_imagefolder(tmp_path / "folder").path)}


class TestShards(DatasetAdapterContract):
    component = ShardsAdapter
    options = {"source": "."}

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        from adaptkit.data.export import write_tar_shards

        samples = ((local.encode(local.pattern_image(i)), {"caption": f"picture {i}"}) for i in range(5))
        write_tar_shards(samples, tmp_path / "shards", per_shard=2)
        return {"source": str(tmp_path / "shards")}


class TestEmbeddedStyles(DatasetAdapterContract):
    component = EmbeddedStylesAdapter
    bad_options = [({"style": "sepia"}, "data.options.style"), ({"count": 0}, "data.options.count")]

    @pytest.fixture
    def dataset_options(self) -> dict[str, Any]:
        return {"style": "ink", "count": 3, "image_size": 32}


# --------------------------------------------------------------------------- methods


class TestSD1(ModelFamilyContract):
    component = StableDiffusion1

    @pytest.fixture
    def family_base(self, tiny_model_dir: Path) -> Path:
        return tiny_model_dir


class TestSD2(ModelFamilyContract):
    component = StableDiffusion2

    @pytest.fixture(scope="class")
    def family_base(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from adaptkit.testing.tiny_sd2 import save_tiny_sd2_pipeline

        return save_tiny_sd2_pipeline(tmp_path_factory.mktemp("sd2") / "tiny-sd2")


class TestSD3(ModelFamilyContract):
    component = StableDiffusion3

    @pytest.fixture(scope="class")
    def family_base(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from adaptkit.testing.tiny_sd3 import save_tiny_sd3_pipeline

        return save_tiny_sd3_pipeline(tmp_path_factory.mktemp("sd3") / "tiny-sd3")


class TestSDXL(ModelFamilyContract):
    component = StableDiffusionXL

    @pytest.fixture(scope="class")
    def family_base(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

        return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


class TestFull(MethodContract):
    component = FullMethod
    bad_options = [({"train_unet": False}, "method.options.train_unet: unknown key (valid: train_text_encoder)")]


class TestFullWithTextEncoder(MethodContract):
    component = FullMethod
    options = {"train_text_encoder": True}


class TestLora(MethodContract):
    component = LoraMethod
    options = {"rank": 4, "alpha": 2}
    bad_options = [
        ({"rnk": 4}, "method.options.rnk: unknown key (valid: rank, alpha, target_modules, conv,"),
        ({"rank": 0}, "method.options.rank:"),
        ({"init_weights": "pissa"}, "method.options.init_weights"),
    ]


class TestLoraConvTextEncoder(MethodContract):
    component = LoraMethod
    options = {"rank": 2, "alpha": 8, "conv": True, "text_encoder": True, "dropout": 0.1}


class TestLoha(MethodContract):
    component = LohaMethod
    options = {"rank": 4, "alpha": 2}
    bad_options = [({"text_encoder": True}, "method.options.text_encoder: unknown key")]


# --------------------------------------------------------------------------- samplers


class TestDDIM(SamplerContract):
    component = DDIMSampler
    options = {"eta": 0.5, "timestep_spacing": "trailing"}
    bad_options = [({"eta": 2.0}, "sample.options.eta"), ({"timestep_spacing": "even"}, "sample.options.timestep")]


class TestPNDM(SamplerContract):
    component = PNDMSampler
    bad_options = [({"skip_prk": True}, "sample.options.skip_prk: unknown key (valid: skip_prk_steps)")]


class TestDPMSolver(SamplerContract):
    component = DPMSolverSampler
    options = {"solver_order": 3, "use_karras_sigmas": True}
    bad_options = [
        ({"solver_ordr": 3}, "sample.options.solver_ordr: unknown key"),
        ({"solver_order": 4}, "sample.options.solver_order"),
        ({"algorithm_type": "euler"}, "sample.options.algorithm_type: Input should be"),
    ]


# --------------------------------------------------------------------------- metrics (no built-in yet: a toy one)


class MeanBrightness(Metric):
    """Adapted minus base mean pixel value, with a CI from the spread over pairs (toy)."""

    name = "mean-brightness"
    description = "Mean pixel value, adapted minus base (toy metric for the contract test)."

    def compute(self, context: Any) -> list[Figure]:
        import numpy as np

        pairs = context.pairs
        diffs = [np.asarray(a, float).mean() - np.asarray(b, float).mean() for a, b in zip(pairs.adapted, pairs.base)]
        value, spread = float(np.mean(diffs)), float(np.std(diffs))
        return [Figure(self.name, "brightness", value, value - spread, value + spread, True, len(diffs), "mean value")]


class TestToyMetric(MetricContract):
    component = MeanBrightness
    figures = {"brightness"}
    plugin_modules = [__name__]


# Registered through the hook, like any plugin's metric (TestToyMetric loads this module as a plugin).
from adaptkit.hookspecs import hookimpl  # noqa: E402


@hookimpl
def register_metrics(register: Any) -> None:
    register(MeanBrightness)


# --------------------------------------------------------------------------- the contracts can fail


class BrokenSampler(Sampler):
    """Drops the base model's betas: the contract must notice."""

    name = "broken"
    description = "A sampler that ignores the base config."

    def build(self, scheduler_config: dict[str, Any]) -> Any:
        from diffusers import DDIMScheduler

        return DDIMScheduler(beta_schedule="linear")


def test_a_sampler_that_ignores_the_base_config_fails_its_contract(tiny_model_dir: Path) -> None:
    from adaptkit.testing.tiny_steps import load_tiny

    class Contract(SamplerContract):
        component = BrokenSampler

    with pytest.raises(AssertionError, match="betas"):
        Contract().test_contract_builds_a_scheduler_from_the_base_config(load_tiny(tiny_model_dir))
    with pytest.raises(AssertionError, match="broken"):  # not registered by any plugin
        Contract().test_contract_registered_once_in_the_plugin_manager()


def test_a_metric_missing_a_declared_figure_fails_its_contract() -> None:
    class Contract(MetricContract):
        component = MeanBrightness
        figures = {"brightness", "sharpness"}

    with pytest.raises(AssertionError):
        Contract().test_contract_returns_its_declared_figures_with_finite_values(small_eval_context())
