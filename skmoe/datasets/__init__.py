"""Synthetic data generators with known ground truth."""

from ._gaussian_gated import ggmoe_paper_setting, make_gaussian_gated_moe

__all__ = ["ggmoe_paper_setting", "make_gaussian_gated_moe"]
