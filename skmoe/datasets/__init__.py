"""Synthetic data generators with known ground truth."""

from ._gaussian_gated import make_gaussian_gated_moe
from ._sequence_multi_index import make_sequence_multi_index

__all__ = ["make_gaussian_gated_moe", "make_sequence_multi_index"]
