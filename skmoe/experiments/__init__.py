"""Reproducible simulation studies built on skmoe's estimators."""

from ._convergence_rates import ConvergenceRateResult, convergence_rates, near_truth_start

__all__ = ["ConvergenceRateResult", "convergence_rates", "near_truth_start"]
