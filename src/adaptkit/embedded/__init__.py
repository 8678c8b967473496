"""Embedded offline world (shapes, styles), probes and tiny Stable Diffusion model."""
