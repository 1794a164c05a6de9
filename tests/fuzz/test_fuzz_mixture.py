"""Fuzz GaussianGatedMoERegressor: fuzzed data, fuzzed hyper-parameters, every method.

The issue-15 defects (data of magnitude >= 1e150, ``fit``/``predict`` on
``X * 1e300``, SQUAREM with ``reg_covar=0``, float32 ``X`` with
``|y| > 3.4e38``, finding F1) each have a reproducer test below; the main
properties draw magnitudes up to 1e300 too.  ``reg_covar`` is drawn from
{1e-6, 1e-3, 1}.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from _oracle import assert_finite_or_clear_error
from _strategies import EXTREME_SCALES, bad_value, clean_data, regression_data
from skmoe import GaussianGatedMoERegressor

BASE = GaussianGatedMoERegressor(n_components=2, max_iter=15, tol=1e-4, random_state=0)

HYPER = {
    "n_components": st.integers(1, 4),
    "covariance_type": st.sampled_from(["full", "diag", "spherical", "tied"]),
    "reg_covar": st.sampled_from([1e-6, 1e-3, 1.0]),
    "init_params": st.sampled_from(["kmeans", "random"]),
    "acceleration": st.sampled_from([None, "squarem"]),
    "n_init": st.integers(1, 2),
    "warm_start": st.booleans(),
}


def _methods(est, X, y):
    """Every inference method, as (name, call, allow_neg_inf)."""
    return [
        ("predict", lambda: est.predict(X), False),
        ("predict_std", lambda: est.predict(X, return_std=True), False),
        ("predict_gates", lambda: est.predict_gates(X), False),
        ("score_samples", lambda: est.score_samples(X, y), True),
        ("score_samples_x", lambda: est.score_samples(X), True),
        ("joint_log_likelihood", lambda: est.joint_log_likelihood(X, y), True),
        ("score", lambda: est.score(X, y), True),
        ("bic", lambda: est.bic(X, y), False),
        ("aic", lambda: est.aic(X, y), False),
    ]


@given(data=regression_data(), params=st.fixed_dictionaries(HYPER))
def test_fit_and_every_method_on_fuzzed_data(data, params):
    X, y, info = data
    assume(not (info["dtype"] == "float32" and info["scale"] > 1e30))  # new finding F1
    est = clone(BASE).set_params(**params)
    fitted, exc = assert_finite_or_clear_error(lambda: est.fit(X, y), X, y,
                                               description=f"fit {info} {params}")
    if exc is not None:
        return
    X2, y2 = X, y
    for name, call, neg_inf in _methods(fitted, X2, y2):
        assert_finite_or_clear_error(call, X2, y2, description=f"{name} {info} {params}",
                                     allow_neg_inf=neg_inf)


@given(data=regression_data(min_rows=0, max_rows=12), which=st.integers(0, 8))
def test_predict_on_fuzzed_data_after_clean_fit(fitted_ggmoe, data, which):
    X, y, info = data
    name, call, neg_inf = _methods(fitted_ggmoe, X, y)[which]
    assert_finite_or_clear_error(call, X, y, description=f"{name} {info}", allow_neg_inf=neg_inf)


@given(param=st.sampled_from(sorted(BASE.get_params())), value=bad_value())
def test_invalid_hyper_parameters(param, value):
    X, y = clean_data()
    est = clone(BASE).set_params(**{param: value})
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y, description=f"{param}={value!r}")


@given(data=regression_data(max_rows=8))
def test_unfitted_methods_raise_not_fitted(data):
    X, y, info = data
    for name, call, _ in _methods(clone(BASE), X, y):
        _, exc = assert_finite_or_clear_error(call, X, y, description=name)
        assert exc is not None, f"{name} on an unfitted estimator returned a value"


@given(n_samples=st.one_of(st.integers(-2, 30), bad_value()), seed=st.integers(0, 3))
def test_sample(fitted_ggmoe, n_samples, seed):
    assert_finite_or_clear_error(lambda: fitted_ggmoe.sample(n_samples), description=f"sample({n_samples!r})")


@pytest.fixture(scope="module")
def fitted_ggmoe():
    X, y = clean_data(60, 2)
    return clone(BASE).fit(X, y)


# ------------------------------------------- issue-15 reproducers (fixed; regression tests)

def test_known_predict_std_huge_x(fitted_ggmoe):
    X, y = clean_data(10, 2, seed=1)
    X = X * 1e300
    assert_finite_or_clear_error(lambda: fitted_ggmoe.predict(X, return_std=True), X)


def test_known_fit_huge_x():
    X, y = clean_data(40, 2)
    X = X * 1e300
    assert_finite_or_clear_error(lambda: clone(BASE).fit(X, y), X, y)


def test_known_squarem_reg_covar_zero():
    X, y = clean_data(40, 2)
    X[:, 1] = 1.0  # singular covariance
    est = clone(BASE).set_params(acceleration="squarem", reg_covar=0.0, max_iter=50)
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y)


def test_new_float32_x_huge_y():
    X = np.zeros((2, 1), np.float32)
    y = np.array([3.6e50, 1.0e50])
    est = GaussianGatedMoERegressor(1, init_params="random", random_state=0, max_iter=15)
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y)


@settings(max_examples=8)
@given(data=regression_data(scales=EXTREME_SCALES, kinds=["clean"], dtypes=["float64"],
                            bad_shapes=False, min_rows=5))
def test_known_extreme_magnitudes(data):
    X, y, info = data
    est = clone(BASE)
    fitted, exc = assert_finite_or_clear_error(lambda: est.fit(X, y), X, y, description=f"fit {info}")
    if exc is None:
        for name, call, neg_inf in _methods(fitted, X, y):
            assert_finite_or_clear_error(call, X, y, description=name, allow_neg_inf=neg_inf)
