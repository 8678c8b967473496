"""``adaptkit bench``: training scenarios measured through the real Trainer (see :mod:`adaptkit.cli.bench`)."""
