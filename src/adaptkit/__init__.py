"""adaptkit: adapt Stable Diffusion to a visual style, with the evidence to show it.

The public API for plugin authors lives here; everything else is private.
"""

from adaptkit.component import DatasetAdapter, Example, Method, Metric, Options, Sampler, StyleDataset
from adaptkit.errors import UserError
from adaptkit.hookspecs import hookimpl
from adaptkit.recipe import Recipe

__version__ = "0.1.0"

__all__ = [
    "DatasetAdapter",
    "Example",
    "Method",
    "Metric",
    "Options",
    "Recipe",
    "Sampler",
    "StyleDataset",
    "UserError",
    "hookimpl",
    "__version__",
]
