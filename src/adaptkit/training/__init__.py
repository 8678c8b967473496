"""The pieces of the training loop, one job per module; :mod:`adaptkit.training.trainer` composes them."""
