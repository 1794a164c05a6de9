"""Gaussian-gated mixtures of linear experts, fitted by closed-form EM."""

from ._gaussian_gated import GaussianGatedMoERegressor

__all__ = ["GaussianGatedMoERegressor"]
