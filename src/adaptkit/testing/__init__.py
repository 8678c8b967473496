"""Test helpers for adaptkit and its plugins: tiny Stable Diffusion models built in code.

Kept free of eager heavy imports: import the submodule you need, e.g.
``from adaptkit.testing.tiny_model import save_tiny_pipeline``.
"""
