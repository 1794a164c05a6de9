"""Tests for skmoe.datasets.make_gaussian_gated_moe."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe.datasets import make_gaussian_gated_moe


def test_shapes_and_reproducibility():
    X, y, labels, params = make_gaussian_gated_moe(
        50, 3, n_components=4, n_outputs=2, return_labels=True, return_params=True,
        random_state=0,
    )
    assert X.shape == (50, 3) and y.shape == (50, 2) and labels.shape == (50,)
    assert params["coef"].shape == (4, 2, 3)
    X2, y2 = make_gaussian_gated_moe(50, 3, n_components=4, n_outputs=2, random_state=0)
    assert_array_equal(X, X2)
    assert_array_equal(y, y2)


def test_samples_follow_the_given_parameters():
    """Per-component moments match the parameters (Monte Carlo, 200k rows)."""
    params = {
        "weights": np.array([0.2, 0.8]),
        "means": np.array([[-1.0, 2.0], [3.0, 0.0]]),
        "covariances": np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 2.0]]]),
        "coef": np.array([[[1.0, -2.0]], [[0.5, 0.5]]]),
        "intercept": np.array([[0.3], [-1.0]]),
        "noise_covariances": np.array([[[0.04]], [[0.25]]]),
    }
    n = 200_000
    X, y, labels = make_gaussian_gated_moe(n, params=params, return_labels=True, random_state=1)
    assert_allclose(np.bincount(labels) / n, params["weights"], atol=0.005)
    for k in range(2):
        xk, yk = X[labels == k], y[labels == k]
        assert_allclose(xk.mean(axis=0), params["means"][k], atol=0.02)
        assert_allclose(np.cov(xk.T), params["covariances"][k], atol=0.03)
        design = np.c_[xk, np.ones(len(xk))]
        beta = np.linalg.lstsq(design, yk, rcond=None)[0]
        assert_allclose(beta[:2], params["coef"][k, 0], atol=0.01)
        assert_allclose(beta[2], params["intercept"][k, 0], atol=0.02)
        assert_allclose(np.var(yk - design @ beta), params["noise_covariances"][k, 0, 0], rtol=0.03)


def test_shuffle_false_groups_rows_by_component():
    _, _, labels = make_gaussian_gated_moe(100, return_labels=True, shuffle=False, random_state=0)
    assert np.all(np.diff(labels) >= 0)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="n_samples"):
        make_gaussian_gated_moe(0)
    with pytest.raises(ValueError, match="missing"):
        make_gaussian_gated_moe(10, params={"weights": [1.0]})
