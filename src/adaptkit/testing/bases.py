"""``testing:tiny-sd``, ``tiny-sd2``, ``tiny-sdxl``, ``tiny-sd3``, ``sd15-random`` and ``sdxl-random``: models
built in code, registered as named base models.

``tiny-sd`` is the tiny SD v1-layout test model (:mod:`adaptkit.testing.tiny_model`); ``tiny-sd2``,
``tiny-sdxl`` and ``tiny-sd3`` its SD 2.x, SDXL and SD 3.x siblings (:mod:`~adaptkit.testing.tiny_sd2`,
:mod:`~adaptkit.testing.tiny_sdxl`, :mod:`~adaptkit.testing.tiny_sd3`); ``sd15-random`` the SD v1.5
architecture with random weights (:mod:`adaptkit.testing.sd15`), ``adaptkit bench``'s default, and
``sdxl-random`` SDXL's (:mod:`adaptkit.testing.sdxl_random`, for ``adaptkit bench --family sdxl``).
Each is built on first use into ``$ADAPTKIT_CACHE/testing/<name>/<fingerprint>`` (default
``~/.cache/adaptkit``), so it loads through ``from_pretrained`` like any folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from adaptkit.component import BaseModels
from adaptkit.hookspecs import hookimpl


def cache_root() -> Path:
    """adaptkit's cache folder: ``$ADAPTKIT_CACHE`` or ``~/.cache/adaptkit``."""
    return Path(os.environ.get("ADAPTKIT_CACHE") or Path.home() / ".cache" / "adaptkit")


#: The modules that build and assemble the test models (the sources a built model depends on),
#: relative to the ``adaptkit`` package.
BUILDER_MODULES = (
    "testing/configs.py",
    "testing/sd15.py",
    "testing/sdxl_random.py",
    "testing/tiny_model.py",
    "testing/tiny_sd2.py",
    "testing/tiny_sd3.py",
    "testing/tiny_sdxl.py",
    "builtins/families/sd1.py",
    "builtins/families/sdxl.py",
    "builtins/families/sd3.py",
)


def builder_fingerprint() -> str:
    """12 hex digits over the model-building and -assembling sources (:data:`BUILDER_MODULES`), the shipped
    architecture configs, and the diffusers and transformers versions that save the models."""
    kit = Path(__file__).resolve().parent
    return sources_fingerprint([*(kit.parent / name for name in BUILDER_MODULES), *sorted(kit.glob("*/*.json"))])


def sources_fingerprint(paths: "list[Path]") -> str:
    """12 hex digits over the bytes of ``paths`` and the diffusers and transformers versions."""
    import hashlib

    import diffusers
    import transformers

    digest = hashlib.blake2b(digest_size=6)
    for path in paths:
        digest.update(Path(path).read_bytes())
    digest.update(f"{diffusers.__version__} {transformers.__version__}".encode())
    return digest.hexdigest()


def cached_build(model: str, fingerprint: str, build: "Callable[[Path], object]") -> Path:
    """``testing/<model>/<fingerprint>`` under :func:`cache_root`, made by ``build(folder)`` the first
    time (into a temporary folder renamed into place, so a crash leaves no half-built model)."""
    import fcntl

    folder = cache_root() / "testing" / model / fingerprint
    if (folder / "model_index.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: the processes of a torchrun launch all ask for the base at once, and a
    # second builder must not replace the folder a first one's process is already reading.
    with (folder.parent / f".{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "model_index.json").is_file():
            tmp = folder.with_name(f".{folder.name}-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            build(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    return folder


def _builders() -> dict[str, Callable[..., None]]:
    from adaptkit.testing.sd15 import save_sd15_random_pipeline
    from adaptkit.testing.sdxl_random import save_sdxl_random_pipeline
    from adaptkit.testing.tiny_model import save_tiny_pipeline
    from adaptkit.testing.tiny_sd2 import save_tiny_sd2_pipeline
    from adaptkit.testing.tiny_sd3 import save_tiny_sd3_pipeline
    from adaptkit.testing.tiny_sdxl import save_tiny_sdxl_pipeline

    return {
        "tiny-sd": save_tiny_pipeline,
        "tiny-sd2": save_tiny_sd2_pipeline,
        "tiny-sdxl": save_tiny_sdxl_pipeline,
        "tiny-sd3": save_tiny_sd3_pipeline,
        "sd15-random": save_sd15_random_pipeline,
        "sdxl-random": save_sdxl_random_pipeline,
    }


class TestingModels(BaseModels):
    """Models built in code with seed 0 and cached; for tests, smoke recipes and benchmarks."""

    name = "testing"
    description = (
        "Models built in code: tiny-sd, tiny-sd2, tiny-sdxl, tiny-sd3 (tests), sd15-random and sdxl-random "
        "(the SD v1.5 and SDXL architectures with random weights, for benchmarks)."
    )

    def models(self) -> list[str]:
        """``tiny-sd``, ``tiny-sd2``, ``tiny-sdxl``, ``tiny-sd3``, ``sd15-random`` and ``sdxl-random``."""
        return list(_builders())

    def locate(self, model: str) -> Path:
        """Build ``model`` into the cache the first time (atomically: a temporary folder renamed into place).

        The folder is ``testing/<model>/<fingerprint>`` (:func:`builder_fingerprint`), so a changed
        builder (an upgrade of adaptkit or diffusers) builds a fresh copy instead of reusing a stale one.
        """
        return cached_build(model, builder_fingerprint(), lambda folder: _builders()[model](folder, seed=0))


@hookimpl
def register_base_models(register: Callable[[type[BaseModels]], None]) -> None:
    """Register ``testing:<model>``."""
    register(TestingModels)
