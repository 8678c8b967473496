"""Built-in evaluation metrics, one module each (listed in ``adaptkit.plugins.DEFAULT_PLUGINS``).

``style``, ``clip_score``, ``content``, ``kid``, ``cmmd`` and ``embedded_probes``; their shared
options and helpers are in ``_common`` and ``_distribution``.
"""
