"""Built-in evaluation metrics, one module each (listed in ``adaptkit.plugins.DEFAULT_PLUGINS``).

``style``, ``clip_score``, ``content``, ``kid`` and ``cmmd`` (the embedded world's ``embedded_probes``
is :mod:`adaptkit.embedded.plugin`'s); their shared
options and helpers are in ``_common`` and ``_distribution``.
"""
