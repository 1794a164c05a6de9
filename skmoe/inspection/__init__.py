"""Tools that analyse a fitted model: diagonal Fisher information estimators."""

from ._fisher import DiagonalFisherEstimator

__all__ = ["DiagonalFisherEstimator"]
