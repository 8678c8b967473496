"""``flux-testing:tiny``: the tiny Flux built in code (:mod:`adaptkit_flux.tiny`), as a named base.

Built on first use into adaptkit's test-model cache under a fingerprint of this plugin's builder
and family sources and of adaptkit's test-model builders it uses, so a changed builder builds a fresh copy.
"""

from __future__ import annotations

from pathlib import Path

from adaptkit import BaseModels
from adaptkit.testing.bases import builder_fingerprint, cached_build, sources_fingerprint

HERE = Path(__file__).resolve().parent


class FluxTestingModels(BaseModels):
    """The tiny Flux (one double and one single block, random weights from seed 0)."""

    name = "flux-testing"
    description = "Flux built in code: tiny (one double and one single block; tests and the smoke recipe)."

    def models(self) -> list[str]:
        """``tiny``."""
        return ["tiny"]

    def locate(self, model: str) -> Path:
        """The cached folder of ``model``, built the first time."""
        from adaptkit_flux.tiny import save_tiny_flux_pipeline

        fingerprint = f"{builder_fingerprint()}-{sources_fingerprint([HERE / 'tiny.py', HERE / 'family.py'])}"
        return cached_build(f"flux-{model}", fingerprint, lambda folder: save_tiny_flux_pipeline(folder, seed=0))
