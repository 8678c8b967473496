"""The base Stable Diffusion model: where it comes from and the components a run uses.

``from adaptkit.models import SDComponents, load_base_model`` is the public entry point;
:mod:`~adaptkit.models.source` decides what ``[model] base`` names, and
:mod:`~adaptkit.models.load` loads it (its family chosen by :mod:`~adaptkit.models.family`),
:mod:`~adaptkit.models.schedule` sets the noise schedule the recipe trains with.
"""

from adaptkit.models.components import SDComponents
from adaptkit.models.load import load_base_model
from adaptkit.models.source import BaseSource, resolve_base

__all__ = ["BaseSource", "SDComponents", "load_base_model", "resolve_base"]
