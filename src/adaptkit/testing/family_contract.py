"""The model-family contract: subclass it with ``component = MyFamily`` and a ``family_base`` fixture
(a saved diffusers folder of the family) to run the family through recognition, loading and sampling,
training with an exact resume, diffusers' own LoRA loader, and every export its family declares.

    from adaptkit.testing.family_contract import ModelFamilyContract

    class TestMyFamily(ModelFamilyContract):
        component = MyFamily

        @pytest.fixture(scope="class")
        def family_base(self, tmp_path_factory):
            return save_my_tiny_pipeline(tmp_path_factory.mktemp("mine") / "tiny")
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptkit.testing.contracts import RegisteredContract
from adaptkit.testing.family_runs import assert_kohya_prefixes


class ModelFamilyContract(RegisteredContract):
    """A model family: recognises its bases, loads them with ``model.family`` set, samples right-sized
    images; a LoRA trained on it resumes bit-identically, loads in diffusers' own pipeline to
    adaptkit's images, and exports to kohya keys that diffusers and ``adaptkit import`` read back.

    Provide a ``family_base`` fixture returning a saved base of the family (a diffusers folder).
    """

    kind = "model_families"

    def test_contract_recognises_its_base(self, family_base: Path) -> None:
        import json

        from adaptkit.models.family import component_config_reader
        from adaptkit.models.source import resolve_base
        from adaptkit.recipe import ModelSection

        model = ModelSection(base=str(family_base))
        configs = component_config_reader(resolve_base(model), model)
        index = json.loads((Path(family_base) / "model_index.json").read_text())
        assert self.component().recognises(index, configs), f"{self.component.name} does not recognise {family_base}"
        assert not self.component().recognises({"_class_name": "NoSuchPipeline"}, configs)

    def test_contract_loads_and_samples(self, family_base: Path) -> None:
        import numpy as np
        import torch

        from adaptkit.models import load_base_model
        from adaptkit.recipe import ModelSection
        from adaptkit.testing.family_runs import family_sampler

        components = load_base_model(ModelSection(base=str(family_base), family=self.component.name))
        assert isinstance(components.family, self.component)
        pipeline = components.pipeline(family_sampler(family_base).build(dict(components.scheduler_config)))
        assert isinstance(pipeline, self.component().pipeline_class())
        images = pipeline(
            ["a red star"], num_inference_steps=2, height=32, width=32,
            generator=torch.Generator().manual_seed(0), output_type="np",
        ).images  # fmt: skip
        assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()

    def test_contract_resume_ends_bit_identical_to_a_straight_run(self, family_base: Path, tmp_path: Path) -> None:
        import torch

        from adaptkit.testing.family_runs import adapter_tensors, train, write_family_recipe

        straight = adapter_tensors(train(write_family_recipe(tmp_path, family_base, "straight")))
        stopped = write_family_recipe(tmp_path, family_base, "stopped")
        train(stopped, "train.steps=2")
        resumed = adapter_tensors(train(stopped, resume="latest"))
        assert straight.keys() == resumed.keys() and straight
        for key, value in straight.items():
            assert torch.equal(value, resumed[key]), key

    def test_contract_diffusers_loads_the_lora_to_adaptkits_images(self, family_base: Path, tmp_path: Path) -> None:
        from adaptkit.testing.family_runs import adaptkit_images, diffusers_images, train, write_family_recipe

        run_dir = train(write_family_recipe(tmp_path, family_base, "lora"))
        assert sorted(p.name for p in (run_dir / "samples").iterdir())  # sampled during the run
        ours = adaptkit_images(family_base, run_dir)
        pipeline_class = self.component().pipeline_class()
        theirs = diffusers_images(pipeline_class, family_base, run_dir / "adapter")
        assert (ours - theirs).abs().max() <= 1e-4, (ours - theirs).abs().max()
        assert (ours - diffusers_images(pipeline_class, family_base)).abs().max() > 1e-3  # the LoRA matters

    def test_contract_kohya_export_reloads_in_diffusers_and_imports_back(self, family_base: Path, tmp_path) -> None:
        if not self.component.kohya_layout:
            pytest.skip(f"{self.component.name} declares no kohya/LyCORIS layout")
        from adaptkit.interop.export import export_run
        from adaptkit.interop.importer import import_file
        from adaptkit.recipe import ModelSection
        from adaptkit.testing.family_runs import adaptkit_images, diffusers_images, train, write_family_recipe

        run_dir = train(write_family_recipe(tmp_path, family_base, "lora-te", text_encoder=True))
        ours = adaptkit_images(family_base, run_dir)
        kohya = export_run(run_dir, "kohya")
        assert_kohya_prefixes(kohya, family_base)
        theirs = diffusers_images(self.component().pipeline_class(), family_base, kohya)
        assert (ours - theirs).abs().max() <= 1e-4, (ours - theirs).abs().max()
        imported, _ = import_file(kohya, ModelSection(base=str(family_base)), tmp_path / "imported")
        assert (adaptkit_images(family_base, imported) - ours).abs().max() <= 1e-5

    def test_contract_loha_lycoris_export_imports_back(self, family_base: Path, tmp_path: Path) -> None:
        if not self.component.kohya_layout:
            pytest.skip(f"{self.component.name} declares no kohya/LyCORIS layout")
        from adaptkit.interop.export import export_run
        from adaptkit.interop.importer import import_file
        from adaptkit.recipe import ModelSection
        from adaptkit.testing.family_runs import adaptkit_images, train, write_family_recipe

        run_dir = train(write_family_recipe(tmp_path, family_base, "loha", method="loha", rank=4, alpha=8))
        ours = adaptkit_images(family_base, run_dir)
        lycoris = export_run(run_dir, "kohya")
        imported, found = import_file(lycoris, ModelSection(base=str(family_base)), tmp_path / "imported")
        assert (found.method, found.rank, found.alpha) == ("loha", 4, 8.0)
        assert (adaptkit_images(family_base, imported) - ours).abs().max() <= 1e-5

    def test_contract_full_fine_tune_single_file_loads_bit_identical(self, family_base: Path, tmp_path) -> None:
        """A full fine-tune exported single-file: ``from_single_file`` (the base folder as config) loads
        every weight bit-identical to the run's pipeline folder, and samples the same images."""
        import torch

        from adaptkit.interop.export import export_run
        from adaptkit.testing.family_runs import generate, single_file_pipeline, train, write_family_recipe

        if self.component.single_file_text_encoders is None:
            pytest.skip(f"{self.component.name} declares no single-file layout")
        recipe = write_family_recipe(tmp_path, family_base, "full", method="full")
        run_dir = train(recipe, "train.steps=2", "train.learning_rate=1e-4")
        path = export_run(run_dir, "single-file")
        pipeline_class = self.component().pipeline_class()
        loaded = single_file_pipeline(pipeline_class, path, family_base, family_base)
        saved = single_file_pipeline(pipeline_class, run_dir / "adapter", None, family_base)
        for part in ("unet", "vae", *self.component.single_file_text_encoders):
            ours, theirs = getattr(saved, part).state_dict(), getattr(loaded, part).state_dict()
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part
        torch.testing.assert_close(generate(loaded), generate(saved), atol=1e-4, rtol=0)
