"""The pieces of the training loop, one job per module; :mod:`adaptkit.trainer` composes them."""
