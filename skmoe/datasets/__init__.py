"""Synthetic data generators with known ground truth."""

from ._gaussian_gated import make_gaussian_gated_moe

__all__ = ["make_gaussian_gated_moe"]
