"""Sampling: the one generation path (grids, ``adaptkit sample``, evaluation) and pipeline assembly.

- :mod:`adaptkit.sampling.generate` — :class:`~adaptkit.sampling.generate.GenerationSettings` and
  :func:`~adaptkit.sampling.generate.generate_images`, the loop every image goes through;
- :mod:`adaptkit.sampling.grids` — tiling images into labelled grids and before/after sheets;
- :mod:`adaptkit.sampling.pipeline` — a base model (plus a run's result) as a sampling pipeline.
"""
