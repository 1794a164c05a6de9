"""Reproducible simulation studies built on skmoe's estimators."""

from ._convergence_rates import ConvergenceRateResult, convergence_rates, near_truth_start
from ._rate_study import (
    ERROR_KEYS,
    RateStudyResult,
    bootstrap_slope,
    predicted_exponent,
    rate_study,
)

__all__ = [
    "ERROR_KEYS",
    "ConvergenceRateResult",
    "RateStudyResult",
    "bootstrap_slope",
    "convergence_rates",
    "near_truth_start",
    "predicted_exponent",
    "rate_study",
]
