"""Synthetic data generators with known ground truth."""

from ._gaussian_gated import ggmoe_paper_setting, make_gaussian_gated_moe
from ._latent_cluster import make_latent_cluster_regression
from ._sequence_multi_index import make_sequence_multi_index

__all__ = [
    "ggmoe_paper_setting",
    "make_gaussian_gated_moe",
    "make_latent_cluster_regression",
    "make_sequence_multi_index",
]
