"""sample_weight in GaussianGatedMoERegressor: frequency-weight semantics.

An integer weight must be the same as repeating the row and a zero weight the
same as dropping it, on every fitted attribute, from the same starting point.
"""

import array_api_strict as xps
import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import make_gaussian_gated_moe
from skmoe.mixture import _passes_numba, _passes_xp
from skmoe.mixture._params import _kernel_params
from skmoe.utils._array_api import array_api_namespace
from _starts import dict_start

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "coef_",
          "intercept_", "noise_covariances_", "lower_bound_"]


@pytest.fixture(scope="module")
def data():
    X, y, params = make_gaussian_gated_moe(
        500, 2, n_components=3, return_params=True, random_state=0
    )
    return X, y, params


def _fit(X, y, start, covariance_type, sample_weight=None, **kwargs):
    model = GaussianGatedMoERegressor(
        3, covariance_type=covariance_type, init_params=start, tol=0.0, max_iter=25,
        **kwargs,
    )
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        return model.fit(X, y, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=1e-10):
    for name in FITTED:
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(data, covariance_type):
    X, y, params = data
    weight = np.random.RandomState(1).randint(1, 4, size=len(X))
    start = dict_start(params, covariance_type)
    weighted = _fit(X, y, start, covariance_type, weight)
    repeated = _fit(np.repeat(X, weight, axis=0), np.repeat(y, weight), start, covariance_type)
    _assert_same_fit(weighted, repeated)
    Xr, yr = np.repeat(X, weight, axis=0), np.repeat(y, weight)
    assert_allclose(weighted.bic(X, y, weight), repeated.bic(Xr, yr), rtol=1e-10)
    assert_allclose(weighted.aic(X, y, weight), repeated.aic(Xr, yr), rtol=1e-10)
    # The weighted lower bound is the weighted mean training log-likelihood.
    assert_allclose(weighted.joint_log_likelihood(X, y, weight), weighted.lower_bound_,
                    rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weights_equal_dropped_rows(data, covariance_type):
    X, y, params = data
    weight = np.random.RandomState(2).uniform(0.5, 2.0, size=len(X))
    weight[::3] = 0.0
    # A zero-weight row far out (density underflows to 0) must change nothing.
    X = X.copy()
    X[0] = 1e3
    start = dict_start(params, covariance_type)
    weighted = _fit(X, y, start, covariance_type, weight)
    kept = weight > 0
    dropped = _fit(X[kept], y[kept], start, covariance_type, weight[kept])
    _assert_same_fit(weighted, dropped)


def test_constant_weights_are_no_weights(data):
    X, y, _ = data
    for init_params in ["kmeans", "random_from_data"]:
        model = GaussianGatedMoERegressor(3, init_params=init_params, random_state=0)
        plain = model.fit(X, y)
        plain_means = plain.means_.copy()
        scaled = model.fit(X, y, sample_weight=np.full(len(X), 2.5))
        assert_array_equal(scaled.means_, plain_means)


def test_weighted_kmeans_initialisation(data):
    """max_iter=0 returns the start: the weighted moments of weighted k-means labels."""
    X, y, _ = data
    weight = np.random.RandomState(3).uniform(0.0, 3.0, size=len(X))
    model = GaussianGatedMoERegressor(3, max_iter=0, reg_covar=0.0, random_state=0)
    model.fit(X, y, sample_weight=weight)
    Z = np.column_stack([X, y])
    kmeans = KMeans(3, n_init=1, random_state=np.random.RandomState(0))
    labels = kmeans.fit(Z, sample_weight=weight).labels_
    expected_means = []
    expected_weights = []
    for k in range(3):
        w = weight[labels == k]
        expected_means.append(np.average(X[labels == k], axis=0, weights=w))
        expected_weights.append(w.sum() / weight.sum())
    order = np.argsort(np.array(expected_means)[:, 0])
    got = np.argsort(model.means_[:, 0])
    assert_allclose(model.means_[got], np.array(expected_means)[order], rtol=1e-10)
    assert_allclose(model.weights_[got], np.array(expected_weights)[order], rtol=1e-10)


def test_random_from_data_never_draws_a_zero_weight_row(data):
    X, y, _ = data
    weight = np.zeros(len(X))
    chosen = np.arange(0, len(X), 50)
    weight[chosen] = 1.0
    model = GaussianGatedMoERegressor(3, init_params="random_from_data", max_iter=0,
                                      random_state=0)
    model.fit(X, y, sample_weight=weight)
    # One-hot start: each component's mean is one of the drawn rows.
    distances = np.abs(model.means_[:, None, :] - X[None, chosen, :]).sum(axis=2)
    assert np.all(distances.min(axis=1) < 1e-12)


def test_xp_backend_weighted_pass_matches_numba(data):
    X, y, params = data
    start = dict_start(params, "full")
    model = GaussianGatedMoERegressor(3, init_params=start, max_iter=1, tol=0)
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        model.fit(X, y)
    args = _kernel_params(model._get_parameters())
    Y = y[:, None]
    weight = np.random.RandomState(4).uniform(0, 2, size=len(X))
    weight[:10] = 0.0
    expected = _passes_numba.em_pass(X, Y, *args, True, sample_weight=weight)
    with sklearn.config_context(array_api_dispatch=True):
        X_xp, Y_xp = xps.asarray(X), xps.asarray(Y)
        got = _passes_xp.em_pass(X_xp, Y_xp, *args, True, sample_weight=weight,
                                 xp=array_api_namespace(X_xp))
    assert_allclose(got[0], expected[0], rtol=1e-12)
    for a, b in zip(got[1:], expected[1:]):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "weight, match",
    [
        (lambda n: -np.ones(n), "Negative values in data passed to .sample_weight"),
        (lambda n: np.r_[1.0, 1.0, np.zeros(n - 2)], "n_components"),
        (lambda n: np.ones(n - 1), "sample_weight.shape"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN"),
    ],
)
def test_bad_sample_weight_is_a_clear_error(data, weight, match):
    X, y, _ = data
    with pytest.raises(ValueError, match=match):
        GaussianGatedMoERegressor(3).fit(X, y, sample_weight=weight(len(X)))
