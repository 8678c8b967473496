"""Datasets and images: loading (Hub or local copy), decoding, the shared image pipeline, previews.

Modules (import the one you need; nothing heavy is imported here):

- :mod:`adaptkit.data.loading` — ``datasets.load_dataset`` for a Hub id or a local copy; ``limit_examples``.
- :mod:`adaptkit.data.columns` — choosing image/caption/key columns from ``features``.
- :mod:`adaptkit.data.rows` — :class:`~adaptkit.data.rows.RowsDataset`: lazy, skip-and-count examples.
- :mod:`adaptkit.data.adapter` — :class:`~adaptkit.data.adapter.SourceAdapter`, the base of Hub-backed adapters.
- :mod:`adaptkit.data.images` — decoding, and any image mode to RGB.
- :mod:`adaptkit.data.pipeline` — :class:`~adaptkit.data.pipeline.ImagePipeline`: resize, crop, flip, normalise.
- :mod:`adaptkit.data.preview` — contact sheets.
"""
