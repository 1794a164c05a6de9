"""Tests for GaussianGatedMoERegressor.

Each test checks a property that a wrong implementation would violate:
identities with scikit-learn's GaussianMixture on ``[X, y]``, independent
SciPy/NumPy re-implementations of the E- and M-steps, monotone EM, parameter
recovery, and invariances.
"""

import pickle
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import make_gaussian_gated_moe

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


# ---------------------------------------------------------------- helpers


def _full_gate_covariances(model):
    """Gate covariances of a fitted model as (K, d, d) matrices."""
    K, d = model.means_.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if model.covariance_type == "full":
        return cov
    if model.covariance_type == "tied":
        return np.broadcast_to(cov, (K, d, d))
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def _scipy_log_terms(model, X, Y):
    """log pi_k + log N(x|mu_k,Sigma_k) and log N(y|A_k x+b_k,S_k), via scipy."""
    covs = _full_gate_covariances(model)
    K = model.n_components
    gate = np.column_stack(
        [
            np.log(model.weights_[k])
            + stats.multivariate_normal(model.means_[k], covs[k]).logpdf(X)
            for k in range(K)
        ]
    )
    expert = np.column_stack(
        [
            stats.multivariate_normal(
                np.zeros(Y.shape[1]), model.noise_covariances_[k]
            ).logpdf(Y - X @ model.coef_[k].T - model.intercept_[k])
            for k in range(K)
        ]
    )
    return gate, expert.reshape(len(X), K)


def _gmm_to_moe(gm, n_features):
    """Map a GaussianMixture on [X, y] to MoE parameters (spec section 8)."""
    d = n_features
    S = gm.covariances_
    coef = np.stack([np.linalg.solve(s[:d, :d], s[:d, d:]).T for s in S])
    noise = np.stack([s[d:, d:] - s[d:, :d] @ np.linalg.solve(s[:d, :d], s[:d, d:]) for s in S])
    means = gm.means_[:, :d]
    intercept = gm.means_[:, d:] - np.einsum("kpd,kd->kp", coef, means)
    return {
        "weights": gm.weights_,
        "means": means,
        "covariances": S[:, :d, :d],
        "coef": coef,
        "intercept": intercept,
        "noise_covariances": noise,
    }


def _moe_to_gmm_init(params):
    """Joint mean and precision of z = (x, y) for GaussianMixture's *_init."""
    means, covs, A = params["means"], params["covariances"], params["coef"]
    joint_means = np.hstack([means, np.einsum("kpd,kd->kp", A, means) + params["intercept"]])
    precisions = []
    for k in range(len(means)):
        SA = covs[k] @ A[k].T
        top = np.hstack([covs[k], SA])
        bottom = np.hstack([SA.T, params["noise_covariances"][k] + A[k] @ SA])
        precisions.append(np.linalg.inv(np.vstack([top, bottom])))
    return joint_means, np.stack(precisions)


@pytest.fixture(scope="module")
def moe_data():
    X, y, labels, params = make_gaussian_gated_moe(
        600, 2, n_components=3, return_labels=True, return_params=True, random_state=0
    )
    return X, y, labels, params


def _start_params(params, rng, jitter=0.3):
    """A perturbed copy of ``params`` usable as init_params."""
    start = {key: np.array(value) for key, value in params.items()}
    start["means"] = start["means"] + jitter * rng.standard_normal(start["means"].shape)
    start["coef"] = start["coef"] + jitter * rng.standard_normal(start["coef"].shape)
    start["noise_covariances"] = start["noise_covariances"] * 4
    return start


# ------------------------------------------------- EM correctness / oracles


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_monotonic_likelihood(covariance_type):
    """With warm_start and max_iter=1, each fit is one EM step: never decreasing.

    ``reg_covar=0`` makes the M-step the exact maximiser; with ``reg_covar > 0``
    the iteration is a regularised EM whose fixed point sits O(reg_covar)
    below the maximum likelihood, and the likelihood may drift down by that
    much near convergence (as for GaussianMixture).
    """
    X, y = make_gaussian_gated_moe(400, 2, n_components=3, random_state=1)
    model = GaussianGatedMoERegressor(
        3,
        covariance_type=covariance_type,
        reg_covar=0.0,
        init_params="random",
        warm_start=True,
        max_iter=1,
        random_state=0,
    )
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(120):
            model.fit(X, y)
            bounds.append(model.lower_bound_)
    bounds = np.array(bounds)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:])), np.diff(bounds).min()
    assert bounds[-1] > bounds[0] + 0.1  # EM actually moved


def test_matches_gaussian_mixture_from_same_start(moe_data):
    """Full gates: EM on the MoE is EM of GaussianMixture('full') on [X, y]."""
    X, y, _, params = moe_data
    start = _start_params(params, np.random.RandomState(0))
    joint_means, joint_precisions = _moe_to_gmm_init(start)
    Z = np.c_[X, y]
    kwargs = dict(max_iter=25, tol=0.0, reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(
            3,
            weights_init=start["weights"],
            means_init=joint_means,
            precisions_init=joint_precisions,
            **kwargs,
        ).fit(Z)
        moe = GaussianGatedMoERegressor(3, init_params=start, **kwargs).fit(X, y)
    assert moe.n_iter_ == gm.n_iter_ == 25
    # lower_bound_ is the log-likelihood of the returned parameters.
    assert_allclose(moe.lower_bound_, gm.score(Z), rtol=1e-6)
    assert_allclose(moe.lower_bounds_[-1], gm.lower_bound_, rtol=1e-6)
    mapped = _gmm_to_moe(gm, X.shape[1])
    for key in ("weights", "means", "covariances", "coef", "intercept", "noise_covariances"):
        assert_allclose(getattr(moe, key + "_"), mapped[key], rtol=1e-5, atol=1e-8, err_msg=key)
    assert_allclose(moe.bic(X, y), gm.bic(Z), rtol=1e-6)
    assert_allclose(moe.aic(X, y), gm.aic(Z), rtol=1e-6)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_initialisation_matches_gaussian_mixture(moe_data, init_params):
    """Same random_state: our init on [X, y] is GaussianMixture's init."""
    X, y, _, _ = moe_data
    Z = np.c_[X, y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, init_params=init_params, max_iter=3, tol=0, random_state=7).fit(Z)
        moe = GaussianGatedMoERegressor(
            3, init_params=init_params, max_iter=3, tol=0, random_state=7
        ).fit(X, y)
    assert_allclose(moe.lower_bound_, gm.score(Z), rtol=1e-6)
    assert_allclose(moe.means_, gm.means_[:, :2], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_em_step_matches_independent_implementation(covariance_type):
    """One EM step equals a from-scratch SciPy E-step + weighted least squares."""
    X, Y = make_gaussian_gated_moe(500, 3, n_components=2, n_outputs=2, random_state=3)
    rng = np.random.RandomState(1)
    K, d = 2, 3
    start = {
        "weights": np.array([0.4, 0.6]),
        "means": rng.standard_normal((K, d)),
        "covariances": {
            "full": np.stack([np.eye(d) * 2, np.eye(d) + 0.3]),
            "tied": np.eye(d) * 2 + 0.2,
            "diag": rng.uniform(1, 3, (K, d)),
            "spherical": np.array([1.5, 2.5]),
        }[covariance_type],
        "coef": rng.standard_normal((K, 2, d)),
        "intercept": rng.standard_normal((K, 2)),
        "noise_covariances": np.stack([np.eye(2), [[2.0, 0.5], [0.5, 1.0]]]),
    }
    reference = GaussianGatedMoERegressor(
        K, covariance_type=covariance_type, init_params=start, max_iter=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(X, Y)
        model = GaussianGatedMoERegressor(
            K, covariance_type=covariance_type, init_params=start, max_iter=1, reg_covar=0.0
        ).fit(X, Y)
    # Independent E-step.
    gate, expert = _scipy_log_terms(reference, X, Y)
    joint = gate + expert
    assert_allclose(model.lower_bounds_[0], logsumexp(joint, axis=1).mean(), rtol=1e-10)
    resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    # Independent M-step.
    nk = resp.sum(axis=0)
    assert_allclose(model.weights_, nk / len(X), rtol=1e-10)
    for k in range(K):
        w = resp[:, k]
        mu = w @ X / nk[k]
        assert_allclose(model.means_[k], mu, rtol=1e-9)
        design = np.c_[X, np.ones(len(X))] * np.sqrt(w)[:, None]
        beta = np.linalg.lstsq(design, Y * np.sqrt(w)[:, None], rcond=None)[0]
        assert_allclose(model.coef_[k], beta[:d].T, rtol=1e-7, atol=1e-10)
        assert_allclose(model.intercept_[k], beta[d], rtol=1e-7, atol=1e-10)
        resid = Y - X @ beta[:d] - beta[d]
        assert_allclose(model.noise_covariances_[k], (w * resid.T) @ resid / nk[k], rtol=1e-7)
    full = np.stack([np.cov(X.T, aweights=resp[:, k], bias=True) for k in range(K)])
    expected = {
        "full": full,
        "tied": np.einsum("k,kij->ij", nk, full) / len(X),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    assert_allclose(model.covariances_, expected, rtol=1e-8)


def test_score_samples_predict_and_gates_match_scipy(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    gate, expert = _scipy_log_terms(model, X, y[:, None])
    log_gates = gate - logsumexp(gate, axis=1, keepdims=True)
    assert_allclose(model.predict_gates(X), np.exp(log_gates), rtol=1e-9, atol=1e-14)
    assert_allclose(
        model.score_samples(X, y), logsumexp(log_gates + expert, axis=1), rtol=1e-9
    )
    assert_allclose(model.score_samples(X), logsumexp(gate, axis=1), rtol=1e-9)
    assert_allclose(
        model.joint_log_likelihood(X, y), logsumexp(gate + expert, axis=1).mean(), rtol=1e-10
    )
    # Predictive mean and law-of-total-variance standard deviation.
    g = np.exp(log_gates)
    experts = X @ model.coef_[:, 0, :].T + model.intercept_[:, 0]
    mean = (g * experts).sum(axis=1)
    var = (g * (model.noise_covariances_[:, 0, 0] + experts**2)).sum(axis=1) - mean**2
    y_mean, y_std = model.predict(X, return_std=True)
    assert_allclose(y_mean, mean, rtol=1e-9)
    assert_allclose(y_std, np.sqrt(var), rtol=1e-7)
    assert_array_equal(model.predict(X), y_mean)


def test_lower_bound_is_training_log_likelihood(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    assert model.n_iter_ > 1
    assert_allclose(model.lower_bound_, model.joint_log_likelihood(X, y), rtol=1e-12)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12)


def test_predictive_std_matches_monte_carlo():
    """Draws from the fitted p(y|x) at fixed x have the predicted mean and std."""
    X, y = make_gaussian_gated_moe(800, 1, n_components=3, random_state=5)
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    x0 = np.array([[np.median(X)]])
    g = model.predict_gates(x0)[0]
    rng = np.random.default_rng(0)
    n = 200_000
    comp = rng.choice(3, size=n, p=g)
    draws = (
        model.coef_[comp, 0, 0] * x0[0, 0]
        + model.intercept_[comp, 0]
        + np.sqrt(model.noise_covariances_[comp, 0, 0]) * rng.standard_normal(n)
    )
    mean, std = model.predict(x0, return_std=True)
    se = draws.std() / np.sqrt(n)
    assert abs(mean[0] - draws.mean()) < 5 * se
    assert_allclose(std[0], draws.std(), rtol=0.01)


def test_recovers_true_parameters_at_large_n():
    """Well separated, two outputs: estimates approach the truth (labels matched)."""
    X, Y, truth = make_gaussian_gated_moe(
        30_000, 2, n_components=3, n_outputs=2, separation=5.0, return_params=True,
        random_state=11,
    )
    model = GaussianGatedMoERegressor(3, n_init=3, random_state=0).fit(X, Y)
    cost = np.linalg.norm(truth["means"][:, None] - model.means_[None], axis=-1)
    rows, order = linear_sum_assignment(cost)
    assert_allclose(model.weights_[order], truth["weights"], atol=0.015)
    assert_allclose(model.means_[order], truth["means"], atol=0.05)
    assert_allclose(model.covariances_[order], truth["covariances"], atol=0.06)
    assert_allclose(model.coef_[order], truth["coef"], atol=0.02)
    assert_allclose(model.intercept_[order], truth["intercept"], atol=0.05)
    assert_allclose(model.noise_covariances_[order], truth["noise_covariances"], atol=0.002)
    assert model.predict(X).shape == Y.shape


def test_gates_invariant_under_gauge_map(moe_data):
    """mu_j -> mu_j + Sigma_j c with pi_j reweighted leaves every gate unchanged."""
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    c = np.array([0.7, -0.4])
    S = model.covariances_
    log_w = np.log(model.weights_) + model.means_ @ c + 0.5 * np.einsum("i,kij,j->k", c, S, c)
    moved = {
        "weights": np.exp(log_w - logsumexp(log_w)),
        "means": model.means_ + S @ c,
        "covariances": S,
        "coef": model.coef_,
        "intercept": model.intercept_,
        "noise_covariances": model.noise_covariances_,
    }
    gauge = GaussianGatedMoERegressor(3, init_params=moved, max_iter=0).fit(X, y)
    assert_allclose(gauge.predict_gates(X), model.predict_gates(X), rtol=1e-8, atol=1e-12)
    assert_allclose(gauge.predict(X), model.predict(X), rtol=1e-8)
    # ... but the joint likelihood does tell them apart (it identifies the gates).
    assert gauge.joint_log_likelihood(X, y) < model.joint_log_likelihood(X, y) - 1e-3


def test_sample_moments():
    X, y, params = make_gaussian_gated_moe(
        1000, 2, n_components=2, return_params=True, random_state=2
    )
    model = GaussianGatedMoERegressor(2, init_params=params, max_iter=0, random_state=0)
    model.fit(X, y)
    Xs, ys, labels = model.sample(100_000)
    assert Xs.shape == (100_000, 2) and ys.shape == (100_000,)
    assert_allclose(np.bincount(labels) / 1e5, params["weights"], atol=0.01)
    for k in range(2):
        xk, yk = Xs[labels == k], ys[labels == k]
        assert_allclose(xk.mean(axis=0), params["means"][k], atol=0.03)
        assert_allclose(np.cov(xk.T), params["covariances"][k], atol=0.05)
        resid = yk - xk @ params["coef"][k, 0] - params["intercept"][k, 0]
        assert_allclose(resid.std(), np.sqrt(params["noise_covariances"][k, 0, 0]), rtol=0.02)


# --------------------------------------------------- fit mechanics


def test_n_init_keeps_the_best_initialisation(moe_data):
    """n_init=4 equals the best of the 4 single fits drawn from the same stream."""
    X, y, _, _ = moe_data
    kwargs = dict(init_params="random", max_iter=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stream = np.random.RandomState(0)
        singles = [
            GaussianGatedMoERegressor(3, random_state=stream, **kwargs).fit(X, y).lower_bound_
            for _ in range(4)
        ]
        best = GaussianGatedMoERegressor(
            3, n_init=4, random_state=np.random.RandomState(0), **kwargs
        ).fit(X, y)
    assert len(set(np.round(singles, 8))) > 1  # the inits really differ
    assert best.lower_bound_ == max(singles)


def test_warm_start_continues_em(moe_data):
    X, y, _, params = moe_data
    start = _start_params(params, np.random.RandomState(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = GaussianGatedMoERegressor(3, init_params=start, max_iter=10, tol=0).fit(X, y)
        warm = GaussianGatedMoERegressor(
            3, init_params=start, max_iter=5, tol=0, warm_start=True
        )
        warm.fit(X, y).fit(X, y)
    assert_allclose(warm.means_, cold.means_, rtol=1e-10)
    assert_allclose(warm.lower_bound_, cold.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"n_components": 2}, "n_components changed from 3 to 2"),
        ({"covariance_type": "tied"}, "covariance_type changed from 'full' to 'tied'"),
        ({"covariance_type": "spherical"}, "covariance_type changed"),
        ({"X": "extra feature"}, "number of features in X changed from 2 to 3"),
        ({"y": "two outputs"}, "number of outputs in y changed from 1 to 2"),
    ],
)
def test_warm_start_with_changed_settings_or_data_raises(moe_data, change, match):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
        if "X" in change:
            X = np.hstack([X, X[:, :1]])
        elif "y" in change:
            y = np.column_stack([y, y])
        else:
            model.set_params(**change)
        with pytest.raises(ValueError, match=match + ".*warm_start=False"):
            model.fit(X, y)
        model.set_params(warm_start=False).fit(X, y)
    assert model.weights_.shape == (model.n_components,)


def test_convergence_warning_and_flags(moe_data):
    X, y, _, _ = moe_data
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = GaussianGatedMoERegressor(3, max_iter=1, tol=0, random_state=0).fit(X, y)
    assert not model.converged_ and model.n_iter_ == 1
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    assert model.converged_ and model.n_iter_ < model.max_iter
    assert abs(model.lower_bounds_[-1] - model.lower_bounds_[-2]) < model.tol


@pytest.mark.parametrize("acceleration", [None, "squarem"])
def test_history_is_the_kept_initialisations_lower_bounds(moe_data, acceleration):
    """history_: equal-length columns; objective == lower_bounds_ of the kept init."""
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(
        4, n_init=3, init_params="random", tol=1e-6, acceleration=acceleration,
        random_state=0,
    ).fit(X, y)
    history = model.history_
    assert list(history)[:4] == ["iteration", "objective", "change", "elapsed"]
    lengths = {len(column) for column in history.values()}
    assert lengths == {len(model.lower_bounds_)}
    assert_array_equal(history["objective"], model.lower_bounds_)
    assert_array_equal(history["iteration"], np.arange(1, len(model.lower_bounds_) + 1))
    assert np.all(np.diff(history["elapsed"]) >= 0)
    change = history["change"]
    # The stopping rule: the last tested change is below tol, no earlier one is.
    tested = np.flatnonzero(np.isfinite(change))
    assert abs(change[tested[-1]]) < model.tol and tested[-1] == len(change) - 1
    assert np.all(np.abs(change[tested[:-1]]) >= model.tol)
    if acceleration is None:
        assert model.n_iter_ == len(change)
        assert np.isnan(change[0])
        assert_allclose(change[1:], np.diff(history["objective"]), rtol=0, atol=0)
    else:
        # Rejected extrapolations are passes (n_iter_) but not recorded points.
        assert model.n_iter_ >= len(change)
        # A tested change is one plain EM step from the previous recorded point.
        assert_array_equal(change[tested], history["objective"][tested]
                           - history["objective"][tested - 1])
    # The kept initialisation is the best of the three.
    assert model.lower_bound_ >= model.lower_bounds_[-1] - 1e-12


def test_one_convergence_warning_for_the_kept_initialisation(moe_data):
    X, y, _, _ = moe_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GaussianGatedMoERegressor(3, n_init=3, max_iter=2, tol=0, random_state=0).fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    assert re.match(
        r"GaussianGatedMoERegressor EM \(init [123]/3\) did not converge: the stopping rule "
        r"\(tol=0\) did not fire within max_iter=2 iterations", messages[0]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GaussianGatedMoERegressor(3, max_iter=0, random_state=0).fit(X, y)  # no warning


def _inference(model, X, y):
    return (
        *model.predict(X, return_std=True), model.predict_gates(X), model.score_samples(X, y),
        model.score_samples(X), np.array([model.bic(X, y), model.aic(X, y)]),
        *model.sample(5)[:2],
    )


@pytest.mark.parametrize(
    "change",
    [{"covariance_type": "diag"}, {"covariance_type": "spherical"}, {"n_components": 5},
     {"n_components": 1}, {"reg_covar": 10.0}, {"acceleration": "squarem"}],
)
def test_set_params_after_fit_leaves_inference_unchanged(moe_data, change):
    """Inference reads the fitted state: settings snapshotted at fit, kernel layout."""
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, covariance_type="tied", random_state=0).fit(X, y)
    before = _inference(model, X, y)
    model.set_params(**change)
    for a, b in zip(before, _inference(model, X, y)):
        assert_array_equal(a, b)
    # And the BIC counts the fitted model's parameters (tied gates, K=3).
    n_params = 2 + 3 * 2 + 3 + 3 * (2 + 1 + 1)
    assert_allclose(model.bic(X, y),
                    -2 * model.joint_log_likelihood(X, y) * len(X) + n_params * np.log(len(X)))


def test_inference_does_not_rebuild_the_kernel_layout(moe_data, monkeypatch):
    """No Cholesky factorisation nor layout rebuild per predict call."""
    from skmoe.mixture import _gaussian_gated, _params

    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    before = _inference(model, X, y)[:5]

    def forbidden(*args, **kwargs):
        raise AssertionError("inference rebuilt the kernel layout")

    for owner, name in [(_params, "_precision_cholesky_full"), (_params, "_kernel_params"),
                        (_params, "kernel_layout"), (_gaussian_gated, "_kernel_params"),
                        (_gaussian_gated, "kernel_layout")]:
        monkeypatch.setattr(owner, name, forbidden)
    for a, b in zip(before, _inference(model, X, y)[:5]):
        assert_array_equal(a, b)


def test_failed_warm_start_keeps_the_fitted_state(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    state = pickle.dumps(model.__dict__)
    with pytest.raises(ValueError, match="number of features"):
        model.fit(np.c_[X, X[:, :1]], y)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full_like(X, np.nan), y)
    assert pickle.dumps(model.__dict__) == state


_PROGRESS = re.compile(
    r"^\[GaussianGatedMoERegressor (EM|SQUAREM) \(init (\d+)/(\d+)\)\] iter +(\d+)/(\d+)  "
    r"lower bound +(\S+)  change +(\S+)  elapsed \d+\.\d\ds  ETA <= \d+\.\ds$"
)


def test_verbose_output_is_the_monitor_format(moe_data, capsys):
    """One progress line every verbose_interval iterations per init, one closing line each."""
    X, y, _, _ = moe_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GaussianGatedMoERegressor(
            3, max_iter=20, tol=0, n_init=2, init_params="random", verbose=1,
            verbose_interval=5, random_state=0,
        ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    progress = [_PROGRESS.match(line) for line in lines if " iter " in line]
    assert all(progress), lines
    assert [(m[1], int(m[2]), int(m[3]), int(m[4]), int(m[5])) for m in progress] == [
        ("EM", init, 2, it, 20) for init in (1, 2) for it in (5, 10, 15, 20)
    ]
    closing = [line for line in lines if " iter " not in line]
    assert closing == [
        line for line in closing if re.match(
            r"^\[GaussianGatedMoERegressor EM \(init [12]/2\)\] did not converge after 20 "
            r"iterations in \d+\.\d\ds$", line)
    ]
    assert len(closing) == 2 and len(lines) == 10
    # The printed values are the kept initialisation's history.
    by_init = {}
    for m in progress:
        by_init.setdefault(m[2], []).append((float(m[6]), float(m[7])))
    kept = [np.array(rows) for rows in by_init.values()
            if np.allclose([r[0] for r in rows], model.lower_bounds_[4::5], rtol=1e-6, atol=0)]
    assert len(kept) == 1
    assert_allclose(kept[0][:, 1], model.history_["change"][4::5], rtol=1e-3, atol=1e-15)


def test_verbose_squarem_label_and_silence(moe_data, capsys):
    X, y, _, _ = moe_data
    GaussianGatedMoERegressor(3, acceleration="squarem", random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""
    model = GaussianGatedMoERegressor(
        3, acceleration="squarem", verbose=1, verbose_interval=1, random_state=0
    ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    progress = [_PROGRESS.match(line) for line in lines[:-1]]
    assert all(m is not None and m[1] == "SQUAREM" for m in progress), lines
    # One line per recorded lower bound, then the closing line.
    assert len(progress) == len(model.lower_bounds_)
    assert lines[-1].startswith("[GaussianGatedMoERegressor SQUAREM (init 1/1)] converged after")


def test_results_do_not_depend_on_thread_count(monkeypatch):
    """Several blocks, 1 vs 3 threads: bitwise identical fits."""
    from skmoe.utils import _threading

    X, y = make_gaussian_gated_moe(9000, 2, n_components=3, random_state=0)
    assert _threading.block_partition(len(X))[0] > 1
    fits = []
    for threads in (1, 3):
        monkeypatch.setattr(_threading, "n_threads", lambda threads=threads: threads)
        fits.append(GaussianGatedMoERegressor(3, random_state=0).fit(X, y))
    assert fits[0].lower_bound_ == fits[1].lower_bound_
    assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert_array_equal(fits[0].predict(X), fits[1].predict(X))


# ---------------------------------------------------- dtypes, pickling, io


def test_float32_stays_float32(moe_data):
    X, y, _, _ = moe_data
    m64 = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    m32 = GaussianGatedMoERegressor(3, random_state=0).fit(X.astype(np.float32), y.astype(np.float32))
    for key in ("weights_", "means_", "covariances_", "precisions_cholesky_", "coef_",
                "intercept_", "noise_covariances_"):
        assert getattr(m32, key).dtype == np.float32, key
    X32 = X.astype(np.float32)
    for out in (m32.predict(X32), *m32.predict(X32, return_std=True), m32.predict_gates(X32)):
        assert out.dtype == np.float32
    assert_allclose(m32.predict(X32), m64.predict(X), rtol=1e-3, atol=1e-3)
    assert_allclose(m32.lower_bound_, m64.lower_bound_, rtol=1e-4)


def test_float32_outputs_and_fitted_layout(moe_data):
    """float32 in: every array output float32, scalars Python floats."""
    X, y, _, _ = moe_data
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    model = GaussianGatedMoERegressor(3, acceleration="squarem", random_state=0).fit(X32, y32)
    arrays = [model.score_samples(X32, y32), model.score_samples(X32), *model.sample(4)[:2]]
    assert all(a.dtype == np.float32 for a in arrays)
    for value in (model.score(X32, y32), model.bic(X32, y32), model.joint_log_likelihood(X32, y32),
                  model.lower_bound_):
        assert type(value) is float
    # The stored kernel layout is built from the float32 attributes.
    assert_array_equal(model._fitted_kernel.means, model.means_.astype(np.float64))


def test_pickle_round_trip(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    clone = pickle.loads(pickle.dumps(model))
    assert_array_equal(clone.predict(X), model.predict(X))
    assert_array_equal(clone.score_samples(X, y), model.score_samples(X, y))


def test_inputs_are_not_modified(moe_data):
    X, y, _, params = moe_data
    X_copy, y_copy = X.copy(), y.copy()
    init = {key: np.array(value) for key, value in params.items()}
    init_copy = {key: value.copy() for key, value in init.items()}
    model = GaussianGatedMoERegressor(3, init_params=init).fit(X, y)
    model.predict(X, return_std=True)
    model.score_samples(X, y)
    assert_array_equal(X, X_copy)
    assert_array_equal(y, y_copy)
    for key in init:
        assert_array_equal(init[key], init_copy[key])


def test_predict_does_not_mutate_estimator(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    before = pickle.dumps(model.__dict__)
    model.predict(X, return_std=True)
    model.predict_gates(X)
    model.score_samples(X, y)
    model.score(X, y)
    model.bic(X, y)
    model.sample(5)
    assert pickle.dumps(model.__dict__) == before


def test_multioutput_shapes():
    X, Y = make_gaussian_gated_moe(300, 3, n_components=2, n_outputs=2, random_state=0)
    model = GaussianGatedMoERegressor(2, random_state=0).fit(X, Y)
    assert model.coef_.shape == (2, 2, 3)
    assert model.intercept_.shape == (2, 2)
    assert model.noise_covariances_.shape == (2, 2, 2)
    mean, std = model.predict(X, return_std=True)
    assert mean.shape == std.shape == (300, 2)
    assert model.sample(4)[1].shape == (4, 2)
    # A column-vector y is a 2-D target with one output.
    model1 = GaussianGatedMoERegressor(2, random_state=0).fit(X, Y[:, :1])
    assert model1.predict(X).shape == (300, 1)


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[np.nan, 1.0]] * 5), np.arange(5.0), "NaN"),
        (np.array([[np.inf, 1.0]] * 5), np.arange(5.0), "infinity"),
        (np.ones((5, 2)), np.array([0, 1, np.nan, 2, 3.0]), "NaN"),
        (np.ones((1, 2)), np.ones(1), "1 sample"),
        (np.ones((5, 2)), np.ones(4), "inconsistent numbers of samples"),
        (np.array([["a", "b"]] * 5), np.ones(5), "could not convert|numeric"),
        (np.ones((3, 2)), np.ones(3), "n_samples >= n_components"),
    ],
)
def test_bad_input_raises_clear_value_error(X, y, match):
    with pytest.raises(ValueError, match=match):
        GaussianGatedMoERegressor(4).fit(X, y)


def test_not_fitted():
    model = GaussianGatedMoERegressor()
    for method, args in [
        ("predict", (np.ones((2, 2)),)),
        ("predict_gates", (np.ones((2, 2)),)),
        ("score_samples", (np.ones((2, 2)), np.ones(2))),
        ("sample", ()),
    ]:
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(model, method)(*args)


def test_degenerate_covariance_hints_reg_covar():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    y = np.repeat([0.0, 1.0], 10)
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianGatedMoERegressor(2, reg_covar=0.0, random_state=0).fit(X, y)


def test_wrong_shapes_at_predict_time(moe_data):
    X, y, _, _ = moe_data
    model = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((3, 5)))
    with pytest.raises(ValueError, match="outputs"):
        model.score_samples(X, np.c_[y, y])
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"weights": np.array([0.5, 0.5, 0.5])}, "sum to 1"),
        ({"means": np.zeros((3, 5))}, "'means' should have shape"),
        ({"covariances": -np.ones((3, 2, 2))}, "positive definite"),
        ({"coef": np.zeros((3, 2, 2))}, "'coef' should have shape"),
        ({"noise_covariances": np.full((3, 1, 1), np.nan)}, "NaN"),
    ],
)
def test_invalid_init_params(moe_data, bad, match):
    X, y, _, params = moe_data
    with pytest.raises(ValueError, match=match):
        GaussianGatedMoERegressor(3, init_params={**params, **bad}).fit(X, y)


def test_init_params_component_count_must_match(moe_data):
    X, y, _, params = moe_data
    with pytest.raises(ValueError, match="n_components=2"):
        GaussianGatedMoERegressor(2, init_params=params).fit(X, y)


# ------------------------------------------------------------- SQUAREM


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_squarem_reaches_plain_em_likelihood_monotonically(covariance_type):
    """Over-fitted model: same optimum, fewer passes, never decreasing."""
    X, y = make_gaussian_gated_moe(3000, 1, n_components=3, separation=1.0, random_state=0)
    kwargs = dict(covariance_type=covariance_type, tol=1e-9, max_iter=20000,
                  reg_covar=0.0, random_state=0)
    plain = GaussianGatedMoERegressor(4, **kwargs).fit(X, y)
    fast = GaussianGatedMoERegressor(4, acceleration="squarem", **kwargs).fit(X, y)
    assert plain.converged_ and fast.converged_
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-12)
    # Both stop where one EM step gains < tol; EM is slow there, so allow a
    # small gap, but SQUAREM must not stop at a worse point.
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-5
    assert fast.n_iter_ < plain.n_iter_


def test_parameter_vector_round_trip(moe_data):
    from skmoe.mixture._params import _params_from_vector, _params_to_vector

    X, y, _, _ = moe_data
    for covariance_type in COVARIANCE_TYPES:
        model = GaussianGatedMoERegressor(3, covariance_type=covariance_type, random_state=0)
        params = model.fit(X, y)._get_parameters()
        back = _params_from_vector(_params_to_vector(params), params)
        for key in ("weights", "means", "covariances", "coef", "intercept", "noise_covariances"):
            assert_allclose(back[key], params[key], rtol=1e-10, atol=1e-14)


# ------------------------------------------- overflow and degenerate inputs


@pytest.fixture(scope="module")
def small_fit():
    X, y = make_gaussian_gated_moe(300, n_components=2, random_state=0)
    return X, y, GaussianGatedMoERegressor(2, random_state=0).fit(X, y)


def test_predict_on_overflowing_inputs_raises(small_fit):
    # The gate densities of X * 1e300 overflow in every component: predict
    # returned mean 0 and std NaN, predict_gates rows of zeros.
    X, _, model = small_fit
    with pytest.raises(ValueError, match="predict output is not finite.*rescale"):
        model.predict(X[:5] * 1e300)
    with pytest.raises(ValueError, match="predict output is not finite.*rescale"):
        model.predict(X[:5] * 1e300, return_std=True)
    with pytest.raises(ValueError, match="predict_gates output is not finite.*rescale"):
        model.predict_gates(X[:5] * 1e300)
    # Large but finite inputs are fine: gates sum to one, finite outputs.
    far = X[:5] + 1e5
    assert_allclose(model.predict_gates(far).sum(axis=1), 1.0)
    mean, std = model.predict(far, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)


def test_score_samples_on_overflowing_inputs_raises(small_fit):
    # log p(y|x) was NaN (-inf - -inf), log p(x) was -inf for a finite x:
    # both are overflows of the answer, not values.
    X, y, model = small_fit
    with pytest.raises(ValueError, match="score_samples output.*not finite.*rescale"):
        model.score_samples(X[:5] * 1e300, y[:5])
    with pytest.raises(ValueError, match="score_samples output.*not finite.*rescale"):
        model.score_samples(X[:5] * 1e300)
    with pytest.raises(ValueError, match="joint log-likelihood is not finite"):
        model.joint_log_likelihood(X[:5] * 1e300, y[:5])
    # Far but representable: finite (very negative) log-densities.
    far = model.score_samples(X[:5] + 1e5, y[:5])
    assert np.all(np.isfinite(far)) and np.all(far < -1e6)


@pytest.mark.parametrize("scale_y", [False, True])
def test_fit_on_overflowing_inputs_raises_a_clear_error(small_fit, scale_y):
    # Was numpy's "array must not contain infs or NaNs" from inside KMeans.
    X, y, _ = small_fit
    X, y = (X, y * 1e300) if scale_y else (X * 1e300, y)
    for init in ["kmeans", "random"]:
        with pytest.raises(ValueError, match=r"sum of squares of \[X, y\].*overflow.*rescale"):
            GaussianGatedMoERegressor(2, init_params=init, random_state=0).fit(X, y)


def test_fit_on_large_representable_inputs_works(small_fit):
    X, y, model = small_fit
    scaled = GaussianGatedMoERegressor(2, random_state=0).fit(X * 1e100, y * 1e100)
    assert np.isfinite(scaled.lower_bound_)
    assert_allclose(np.sort(scaled.weights_), np.sort(model.weights_), rtol=1e-6)


@pytest.mark.parametrize("acceleration", [None, "squarem"])
def test_degenerate_covariance_hints_reg_covar_with_squarem(acceleration):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    y = np.repeat([0.0, 1.0], 10)
    model = GaussianGatedMoERegressor(
        2, reg_covar=0.0, random_state=0, acceleration=acceleration
    )
    with pytest.raises(ValueError, match="singular.*increase reg_covar"):
        model.fit(X, y)


def test_singular_noise_covariance_is_a_clear_error_everywhere():
    # SQUAREM maps each EM iterate to log-Cholesky coordinates; an iterate with
    # a singular noise covariance (y exactly linear in x within a component,
    # reg_covar=0) made np.linalg.cholesky raise LinAlgError there.
    from skmoe.mixture._params import _moments_from_responsibilities, _params_to_vector, m_step

    x = np.arange(6.0)[:, None]
    Z = np.hstack([x, 2.0 * x])  # y = 2 x exactly: zero residual variance
    moments = _moments_from_responsibilities(Z, np.ones((6, 1)))
    with pytest.raises(ValueError, match="noise covariance of component 0 is singular.*reg_covar"):
        m_step(*moments, 1, "full", 0.0)
    # With reg_covar > 0 the noise covariance is reg_covar (+ ridge shrinkage).
    params = m_step(*moments, 1, "full", 1e-3)
    assert params["noise_covariances"][0, 0, 0] > 1e-3
    params["noise_covariances"] = np.zeros((1, 1, 1))
    with pytest.raises(ValueError, match="noise covariance of component 0 is singular.*reg_covar"):
        _params_to_vector(params)
    params["noise_covariances"] = np.ones((1, 1, 1))
    params["covariances"] = np.zeros((1, 1, 1))
    with pytest.raises(ValueError, match="gate covariance of component 0 is singular"):
        _params_to_vector(params)


# ------------------------------------------------ reg_covar > 0: the promise


def _penalty_traces(params, covariance_type, n_features):
    """P_k = tr(Sigma_k^-1) + tr(S_k^-1) + tr(A_k^T S_k^-1 A_k) per component.

    For full gates this is tr of the joint (x, y) precision; reg_covar's
    M-step maximises Q(theta' | theta) - reg_covar / 2 * sum_k N_k P_k(theta').
    """
    cov = np.asarray(params["covariances"], dtype=np.float64)
    K = len(params["weights"])
    if covariance_type == "full":
        gate = np.array([np.trace(np.linalg.inv(c)) for c in cov])
    elif covariance_type == "tied":
        gate = np.full(K, np.trace(np.linalg.inv(cov)))
    elif covariance_type == "diag":
        gate = (1.0 / cov).sum(axis=1)
    else:
        gate = n_features / cov
    expert = np.array([
        np.trace(np.linalg.inv(S)) + np.trace(A.T @ np.linalg.solve(S, A))
        for S, A in zip(params["noise_covariances"], params["coef"])
    ])
    return gate + expert


@pytest.mark.parametrize("acceleration", [None, "squarem"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_regularised_em_step_satisfies_its_guarantee(covariance_type, acceleration):
    """With reg_covar > 0, each EM step obeys the documented bound.

    With ``max_iter=1`` a SQUAREM fit is one plain EM pass (extrapolation
    needs two), so both paths are checked step by step; SQUAREM's
    extrapolated points are only kept when they are not worse than the EM
    point (tested elsewhere).

    ``l(theta') - l(theta) >= reg_covar / 2 * sum_k pi'_k (P_k(theta') -
    P_k(theta))`` per sample (``pi'_k = N_k(theta) / n``), which follows from
    the EM inequality and the penalised M-step.  A wrong M-step (e.g. a
    ridge penalty or noise term off by reg_covar) violates it.
    """
    X, y = make_gaussian_gated_moe(200, 2, n_components=3, random_state=1)
    reg = 0.05
    model = GaussianGatedMoERegressor(
        3, covariance_type=covariance_type, reg_covar=reg, init_params="random",
        warm_start=True, max_iter=1, random_state=0, acceleration=acceleration,
    )
    d = X.shape[1]
    slack = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
        for _ in range(200):
            before = model._get_parameters()
            model.fit(X, y)
            after = model._get_parameters()
            ll0, ll1 = model.lower_bounds_[0], model.lower_bound_
            bound = reg / 2 * after["weights"] @ (
                _penalty_traces(after, covariance_type, d)
                - _penalty_traces(before, covariance_type, d)
            )
            slack.append((ll1 - ll0) - bound)
            assert ll1 - ll0 >= bound - 1e-12 * abs(ll0)
    # Not vacuous: the bound is attained up to the EM-inequality gap, which
    # vanishes at convergence.
    assert min(slack) < 1e-6


def test_regularised_em_may_decrease_the_likelihood():
    """The documented exception: reg_covar > 0 is not EM on a fixed objective.

    From the issue: reg_covar=1 on three points, the log-likelihood drops.
    """
    X = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    y = np.zeros(3)
    model = GaussianGatedMoERegressor(
        2, reg_covar=1.0, init_params="k-means++", random_state=0, warm_start=True, max_iter=1
    )
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(30):
            bounds.append(model.fit(X, y).lower_bound_)
    assert np.min(np.diff(bounds)) < -1e-4
