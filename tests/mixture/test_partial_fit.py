"""partial_fit of GaussianGatedMoERegressor: stepwise EM on sufficient statistics."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import make_gaussian_gated_moe
from skmoe.mixture._params import blend_statistics, m_step, shift_statistics

FITTED = ["weights_", "means_", "covariances_", "coef_", "intercept_", "noise_covariances_"]


@pytest.fixture(scope="module")
def truth():
    _, _, params = make_gaussian_gated_moe(
        10, 2, n_components=3, return_params=True, random_state=0
    )
    return params


def _assert_same(a, b, rtol=1e-10):
    for name in FITTED:
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-13,
                        err_msg=name)


def _raw_statistics(params, X, y):
    """Per-sample E[r], E[r z], E[r z z^T] (about 0) by SciPy densities."""
    K = len(params["weights"])
    log_r = np.column_stack([
        np.log(params["weights"][k])
        + stats.multivariate_normal(params["means"][k], params["covariances"][k]).logpdf(X)
        + stats.norm(X @ params["coef"][k, 0] + params["intercept"][k, 0],
                     np.sqrt(params["noise_covariances"][k, 0, 0])).logpdf(y)
        for k in range(K)
    ])
    r = np.exp(log_r - log_r.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    Z = np.column_stack([X, y])
    n = len(X)
    return r.sum(0) / n, r.T @ Z / n, np.einsum("nk,na,nb->kab", r, Z, Z) / n


def _closed_form_m_step(s0, s1, s2, d):
    """GLLiM M-step from raw moments (reg_covar = 0)."""
    mean = s1 / s0[:, None]
    cov = s2 / s0[:, None, None] - mean[:, :, None] * mean[:, None, :]
    coef = np.stack([np.linalg.solve(c[:d, :d], c[:d, d:]).T for c in cov])
    return {
        "weights": s0 / s0.sum(),
        "means": mean[:, :d],
        "covariances": cov[:, :d, :d],
        "coef": coef,
        "intercept": mean[:, d:] - np.einsum("kpd,kd->kp", coef, mean[:, :d]),
        "noise_covariances": np.stack(
            [c[d:, d:] - c[d:, :d] @ np.linalg.solve(c[:d, :d], c[:d, d:]) for c in cov]
        ),
    }


def test_two_updates_match_an_independent_stepwise_em(truth):
    """gamma_1 = 1, then S = (1 - gamma_2) S + gamma_2 s_2 with gamma_2 = (2 + t0)^-kappa."""
    X1, y1 = make_gaussian_gated_moe(800, params=truth, random_state=1)
    X2, y2 = make_gaussian_gated_moe(600, params=truth, random_state=2)
    start = {key: np.array(value) for key, value in truth.items()}
    start["means"] = start["means"] + 0.2
    model = GaussianGatedMoERegressor(
        3, init_params=start, reg_covar=0.0, learning_offset=3.0, learning_decay=0.6
    )
    model.partial_fit(X1, y1)
    S = _raw_statistics(start, X1, y1)
    expected = _closed_form_m_step(*S, 2)
    for key in ["weights", "means", "coef", "noise_covariances"]:
        assert_allclose(getattr(model, key + "_"), expected[key], rtol=1e-9)
    model.partial_fit(X2, y2)
    gamma = (2 + 3.0) ** -0.6
    s = _raw_statistics(expected, X2, y2)
    S = tuple((1 - gamma) * a + gamma * b for a, b in zip(S, s))
    expected = _closed_form_m_step(*S, 2)
    for key in ["weights", "means", "covariances", "coef", "intercept", "noise_covariances"]:
        assert_allclose(getattr(model, key + "_"), expected[key], rtol=1e-9, err_msg=key)
    assert model.n_batch_iter_ == 2


def test_shifted_statistics_give_the_same_m_step():
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((200, 3))
    r = rng.dirichlet(np.ones(2), size=200)
    centers = rng.standard_normal((2, 3))
    U = Z[:, None, :] - centers[None]
    statistics = (r.sum(0), np.einsum("nk,nka->ka", r, U),
                  np.einsum("nk,nka,nkb->kab", r, U, U), centers)
    shifted = shift_statistics(statistics, centers + 5.0)
    direct = (r.sum(0), np.einsum("nk,nka->ka", r, U - 5.0),
              np.einsum("nk,nka,nkb->kab", r, U - 5.0, U - 5.0), centers + 5.0)
    for a, b in zip(shifted, direct):
        assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    p, q = (m_step(*s, 2, "full", 0.0) for s in (statistics, shifted))
    for key in FITTED:
        assert_allclose(p[key[:-1]], q[key[:-1]], rtol=1e-10)
    # Blending with step 1 keeps the batch, with step 0 the (shifted) running sums.
    assert_allclose(blend_statistics(statistics, direct, 1.0)[2], direct[2])
    assert_allclose(blend_statistics(statistics, direct, 0.0)[2], direct[2])


@pytest.mark.parametrize("shuffle", [False, True])
def test_stream_reaches_the_batch_fit_likelihood(truth, shuffle):
    """A stream of batches ends within 0.01 nats/sample of the batch fit, held out.

    The full figure (200 batches of 5,000 rows: 8e-5 / 4e-5 nats in given /
    shuffled order) is in the report; here 40 batches of 2,000 rows.
    """
    n_batches, batch_size = 40, 2000
    X, y = make_gaussian_gated_moe(n_batches * batch_size, params=truth, random_state=1)
    X_test, y_test = make_gaussian_gated_moe(20_000, params=truth, random_state=2)
    batch = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    order = np.arange(n_batches)
    if shuffle:
        order = np.random.RandomState(3).permutation(n_batches)
    online = GaussianGatedMoERegressor(3, random_state=0)
    for b in order:
        rows = slice(b * batch_size, (b + 1) * batch_size)
        online.partial_fit(X[rows], y[rows])
    gap = batch.joint_log_likelihood(X_test, y_test) - online.joint_log_likelihood(
        X_test, y_test
    )
    assert abs(gap) < 0.01
    assert online.n_batch_iter_ == n_batches


def test_partial_fit_after_fit_continues_from_the_fitted_state():
    """partial_fit on the training set itself is one more EM step from the fit.

    The running statistics after fit are those of the training set at the
    fitted parameters, so blending them with the same batch changes nothing,
    and the update is the M-step of the fitted state: a warm-started fit with
    max_iter=1.
    """
    # Overlapping experts, so that EM needs many steps.
    X, y, truth = make_gaussian_gated_moe(
        1500, 2, n_components=3, separation=0.7, return_params=True, random_state=4
    )
    start = {key: np.array(value) for key, value in truth.items()}
    start["means"] = start["means"] + 0.5
    kwargs = dict(n_components=3, init_params=start, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianGatedMoERegressor(**kwargs).fit(X, y)
        warm = GaussianGatedMoERegressor(**kwargs).fit(X, y)
        assert fitted.n_batch_iter_ == 0
        fitted.partial_fit(X, y)
        warm.set_params(warm_start=True, max_iter=1)
        warm.fit(X, y)
    _assert_same(fitted, warm)
    assert fitted.n_batch_iter_ == 1
    # A fresh estimator's first partial_fit starts from init_params instead.
    fresh = GaussianGatedMoERegressor(**kwargs).partial_fit(X, y)
    assert np.abs(fresh.means_ - fitted.means_).max() > 1e-3


def test_batch_weights_equal_repeated_rows(truth):
    X1, y1 = make_gaussian_gated_moe(400, params=truth, random_state=5)
    X2, y2 = make_gaussian_gated_moe(300, params=truth, random_state=6)
    w1 = np.random.RandomState(0).randint(0, 3, size=400)
    w2 = np.random.RandomState(1).randint(0, 3, size=300)
    start = {key: np.array(value) for key, value in truth.items()}
    weighted = GaussianGatedMoERegressor(3, init_params=start)
    repeated = GaussianGatedMoERegressor(3, init_params=start)
    weighted.partial_fit(X1, y1, sample_weight=w1).partial_fit(X2, y2, sample_weight=w2)
    repeated.partial_fit(np.repeat(X1, w1, axis=0), np.repeat(y1, w1))
    repeated.partial_fit(np.repeat(X2, w2, axis=0), np.repeat(y2, w2))
    _assert_same(weighted, repeated)
    assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-12)


def test_settings_are_fixed_after_the_first_call(truth):
    X, y = make_gaussian_gated_moe(300, params=truth, random_state=7)
    model = GaussianGatedMoERegressor(3, random_state=0).partial_fit(X, y)
    before = model.means_.copy()
    model.set_params(n_components=2)
    with pytest.raises(ValueError, match="partial_fit continues.*n_components"):
        model.partial_fit(X, y)
    # The failed call left the fitted state as it was.
    assert_allclose(model.means_, before)
    model.set_params(n_components=3)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :1], y)


@pytest.mark.parametrize("decay", [0.5, 1.1])
def test_learning_decay_must_lie_in_half_open_interval(truth, decay):
    X, y = make_gaussian_gated_moe(300, params=truth, random_state=8)
    with pytest.raises(ValueError, match="learning_decay"):
        GaussianGatedMoERegressor(3, learning_decay=decay).partial_fit(X, y)


def test_first_call_keeps_the_best_of_n_init_starts(truth):
    """The first of n_init starts is the n_init=1 start; here a later one is better."""
    X, y = make_gaussian_gated_moe(1000, params=truth, random_state=9)
    single = GaussianGatedMoERegressor(3, init_params="random", random_state=0)
    several = GaussianGatedMoERegressor(3, init_params="random", n_init=4, random_state=0)
    single.partial_fit(X, y)
    several.partial_fit(X, y)
    assert several.lower_bound_ > single.lower_bound_
