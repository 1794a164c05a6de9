"""Shared test helper: true model parameters as a dict start for ``fit``."""

import numpy as np


def dict_start(params, covariance_type):
    """The true parameters as an ``init_params`` dict for ``covariance_type``."""
    start = {key: np.array(value) for key, value in params.items()}
    cov = start["covariances"]
    start["covariances"] = {
        "full": cov,
        "tied": cov.mean(axis=0),
        "diag": np.stack([np.diag(c) for c in cov]),
        "spherical": np.array([np.diag(c).mean() for c in cov]),
    }[covariance_type]
    return start
