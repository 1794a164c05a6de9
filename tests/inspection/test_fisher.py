"""Tests of DiagonalFisherEstimator: closed forms, finite differences, Monte Carlo."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skmoe import DiagonalFisherEstimator
from skmoe.inspection._fisher_statistics import _extract_network
from skmoe.utils._validation import draw_seed
from skmoe.inspection import _fisher_numba as _k


def _fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def _data(n=30, d=3, seed=0):
    rng = np.random.RandomState(seed)
    return rng.standard_normal((n, d)), rng


def _mlp(kind, activation, hidden, n=30, d=3, seed=0):
    """Small fitted MLPs covering every output family."""
    X, rng = _data(n, d, seed)
    if kind == "softmax":
        y = rng.randint(0, 3, n)
        model = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=seed)
    elif kind == "bernoulli":
        y = rng.randint(0, 2, n)
        model = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=seed)
    elif kind == "multilabel":
        y = rng.randint(0, 2, (n, 2))
        model = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=seed)
    elif kind == "gaussian":
        y = rng.standard_normal((n, 2))
        model = MLPRegressor(hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=seed)
    else:  # poisson
        y = rng.poisson(1.0, n).astype(float)
        model = MLPRegressor(hidden_layer_sizes=hidden, activation=activation, loss="poisson", max_iter=30,
                             random_state=seed)
    _fit_quietly(model, X, y)
    # Larger weights than a 30-iteration fit gives, so that the hidden units
    # are away from their linear regime and the Hessian terms are not tiny.
    model.coefs_ = [2.0 * c for c in model.coefs_]
    return model, X, y


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


# --------------------------------------------------------------------------
# Reference implementation by finite differences
# --------------------------------------------------------------------------


def _params(model):
    return [c.copy() for c in model.coefs_] + [b.copy() for b in model.intercepts_]


def _natural(params, activation, X):
    L = len(params) // 2
    a = X
    for layer in range(L):
        z = a @ params[layer] + params[L + layer]
        if layer == L - 1:
            return z
        a = {"identity": z, "tanh": np.tanh(z), "relu": np.maximum(z, 0),
             "logistic": 1 / (1 + np.exp(-z))}[activation]


def _log_lik(family, h, y, sigma2=1.0):
    """log p(y | h) up to constants in y."""
    if family == "softmax":
        hmax = h.max()
        return h[y] - hmax - np.log(np.exp(h - hmax).sum())
    if family == "bernoulli":
        return float(np.sum(y * h - np.logaddexp(0, h)))
    if family == "poisson":
        return float(np.sum(y * h - np.exp(h)))
    return float(-np.sum((y - h) ** 2) / (2 * sigma2))


def _fd_derivatives(params, activation, x, func, eps=1e-4):
    """First and second central differences of ``func(h(params; x))`` per parameter."""
    first, second = [], []
    f0 = func(_natural(params, activation, x[None])[0])
    for i, p in enumerate(params):
        g1 = np.empty(p.shape)
        g2 = np.empty(p.shape)
        for idx in np.ndindex(p.shape):
            vals = []
            for step in (eps, -eps):
                q = [a.copy() for a in params]
                q[i][idx] += step
                vals.append(func(_natural(q, activation, x[None])[0]))
            g1[idx] = (vals[0] - vals[1]) / (2 * eps)
            g2[idx] = (vals[0] - 2 * f0 + vals[1]) / eps**2
        first.append(g1)
        second.append(g2)
    return first, second


def _fd_jacobian(params, activation, x, eps=1e-6):
    """``dh/dtheta_i`` for every parameter, by central differences: list of (..., C)."""
    out = []
    for i, p in enumerate(params):
        J = np.empty(p.shape + (params[len(params) // 2 - 1].shape[1],))
        for idx in np.ndindex(p.shape):
            q_plus = [a.copy() for a in params]
            q_minus = [a.copy() for a in params]
            q_plus[i][idx] += eps
            q_minus[i][idx] -= eps
            J[idx] = (_natural(q_plus, activation, x[None])[0]
                      - _natural(q_minus, activation, x[None])[0]) / (2 * eps)
        out.append(J)
    return out


def _drawn_label(model, x, family, seed):
    """The label the estimator draws for a single row ``x`` with ``random_state=seed``."""
    net = _extract_network(model)
    h = net.predict_natural(x[None])
    mean, _, _ = _k.output_moments(family, h, 1.0)
    # The fit draws one seed from its random state, then one label per row.
    label_seed = draw_seed(np.random.RandomState(seed))
    one = np.array([0, 1], dtype=np.int64)
    R = _k.draw_residuals(_k.SAMPLER_CODES[family], mean, 1.0, one[:1], one[1:], 1,
                          label_seed, one)[0]
    if family == "softmax":
        return int(np.argmax(R))
    if family == "gaussian":
        return h[0] + R
    return R + mean[0]


# --------------------------------------------------------------------------
# Linear models: closed forms
# --------------------------------------------------------------------------


def test_logistic_binary_closed_form():
    X, rng = _data(80, 4)
    y = (X[:, 0] + 0.5 * rng.standard_normal(80) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    est = DiagonalFisherEstimator(model, n_label_samples=3, random_state=0).fit(X)
    s = model.predict_proba(X)[:, 1]
    w = s * (1 - s)
    N, M = 80, 3
    assert est.family_ == "bernoulli"
    assert_allclose(est.fisher_exact_[0], ((X**2).T @ w / N)[None], rtol=1e-12)
    assert_allclose(est.fisher_exact_[1], [w.mean()], rtol=1e-12)
    v1 = w * (1 - 2 * s) ** 2
    assert_allclose(est.variances_["score"][0], ((X**4).T @ v1 / (N * N * M))[None],
                    rtol=1e-12)
    assert_allclose(est.variances_["score"][1], [v1.sum() / (N * N * M)], rtol=1e-12)
    # Hessian estimator is exact, with zero variance
    for a, b in zip(est.estimates_["hessian"], est.fisher_exact_):
        assert_allclose(a, b, rtol=1e-14, atol=0)
    for key in ("variances_", "empirical_variances_"):
        for a in getattr(est, key)["hessian"]:
            assert_array_equal(a, 0.0)
    assert all(np.all(r == "hessian") for r in est.recommended_)


def test_logistic_multinomial_closed_form():
    X, rng = _data(90, 3)
    y = rng.randint(0, 3, 90)
    model = LogisticRegression().fit(X, y)
    est = DiagonalFisherEstimator(model, random_state=0).fit(X)
    p = model.predict_proba(X)
    w = p * (1 - p)
    assert est.family_ == "softmax"
    assert est.fisher_exact_[0].shape == model.coef_.shape
    assert_allclose(est.fisher_exact_[0], (w.T @ X**2) / 90, rtol=1e-12)
    assert_allclose(est.fisher_exact_[1], w.mean(axis=0), rtol=1e-12)
    v1 = w * (1 - 2 * p) ** 2
    assert_allclose(est.variances_["score"][0], (v1.T @ X**4) / 90**2, rtol=1e-12)
    assert_allclose(est.estimates_["hessian"][0], est.fisher_exact_[0], rtol=1e-14, atol=0)


@pytest.mark.parametrize("Model", [LinearRegression, Ridge])
def test_linear_regression_closed_form(Model):
    X, rng = _data(50, 3)
    y = X @ [1.0, -2.0, 0.5] + 0.3 * rng.standard_normal(50)
    model = Model().fit(X, y)
    est = DiagonalFisherEstimator(model, noise_variance="auto", random_state=0).fit(X, y)
    rss = np.sum((y - model.predict(X)) ** 2)
    sigma2 = rss / (50 - 4)
    assert_allclose(est.noise_variance_, sigma2, rtol=1e-12)
    assert est.fisher_exact_[0].shape == (3,) and est.fisher_exact_[1].shape == ()
    assert_allclose(est.fisher_exact_[0], (X**2).mean(axis=0) / sigma2, rtol=1e-12)
    assert_allclose(est.fisher_exact_[1], 1 / sigma2, rtol=1e-12)
    assert_allclose(est.variances_["score"][0], 2 * (X**4).sum(axis=0) / sigma2**2 / 50**2,
                    rtol=1e-12)
    assert_array_equal(est.variances_["hessian"][0], 0.0)
    # Gaussian, one output: the bounds are tight (3/sigma^4 - 1/sigma^4 = 2/sigma^4)
    for key in ("lower", "upper"):
        assert_allclose(est.variance_bounds_["score"][key][0], est.variances_["score"][0],
                        rtol=1e-12)


def test_ridge_multi_target_and_poisson():
    X, rng = _data(40, 3)
    Y = rng.standard_normal((40, 2))
    model = Ridge().fit(X, Y)
    est = DiagonalFisherEstimator(model, noise_variance=2.0).fit(X)
    assert est.fisher_exact_[0].shape == (2, 3)
    assert_allclose(est.fisher_exact_[0], np.tile((X**2).mean(0) / 2.0, (2, 1)), rtol=1e-12)
    y = rng.poisson(np.exp(0.3 * X[:, 0]))
    model = PoissonRegressor().fit(X, y)
    est = DiagonalFisherEstimator(model, random_state=0).fit(X)
    mu = model.predict(X)
    assert est.family_ == "poisson" and est.noise_variance_ is None
    assert_allclose(est.fisher_exact_[0], (X**2).T @ mu / 40, rtol=1e-10)
    assert_allclose(est.variances_["score"][0], (X**4).T @ (mu * (1 + 2 * mu)) / 40**2,
                    rtol=1e-10)


def test_bernoulli_score_variance_vanishes_at_half():
    X, rng = _data(20, 2)
    model = LogisticRegression().fit(X, rng.randint(0, 2, 20))
    model.coef_[:] = 0.0
    model.intercept_[:] = 0.0
    est = DiagonalFisherEstimator(model, n_label_samples=4, random_state=0).fit(X)
    for v in est.variances_["score"] + est.empirical_variances_["score"]:
        assert_array_equal(v, 0.0)
    # s = 1/2: I = x^2/4 and the squared score is x^2/4 for every label
    assert_allclose(est.estimates_["score"][0], (X**2).mean(0)[None] / 4, rtol=1e-12)


# --------------------------------------------------------------------------
# MLPs: finite differences
# --------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
@pytest.mark.parametrize("hidden", [(4,), (4, 3), (3, 4, 3)])
def test_hessian_matches_finite_differences(activation, hidden):
    """Per parameter: both sampled estimators for one row equal -d^2 log p and
    (d log p)^2 computed by central differences of the log-likelihood."""
    model, X, _ = _mlp("softmax", activation, hidden)
    x = X[:1]
    seed = 3
    est = DiagonalFisherEstimator(model, random_state=seed).fit(x)
    label = _drawn_label(model, x[0], "softmax", seed)
    first, second = _fd_derivatives(
        _params(model), activation, x[0], lambda h: _log_lik("softmax", h, label))
    for got, fd in zip(est.estimates_["hessian"], second):
        assert_allclose(got, -fd, rtol=1e-5, atol=1e-7)
    for got, fd in zip(est.estimates_["score"], first):
        assert_allclose(got, fd**2, rtol=1e-6, atol=1e-10)
    # the Hessian term must matter in this test (not just the GGN)
    assert max(np.abs(a - b).max() for a, b in
               zip(est.estimates_["hessian"][:-1], est.fisher_exact_)) > 1e-4


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli", "multilabel", "poisson"])
def test_hessian_finite_differences_other_families(kind):
    model, X, _ = _mlp(kind, "tanh", (4, 3))
    x = X[2:3]
    family = {"multilabel": "bernoulli"}.get(kind, kind)
    est = DiagonalFisherEstimator(model, random_state=1).fit(x)
    y = _drawn_label(model, x[0], family, 1)
    first, second = _fd_derivatives(_params(model), "tanh", x[0],
                                    lambda h: _log_lik(family, h, y))
    # second differences lose ~1e-16 |log p| / eps^2 ~ 1e-8 |log p|
    atol = 1e-6 * max(1.0, abs(_log_lik(family, _natural(_params(model), "tanh", x)[0], y)))
    for got, fd in zip(est.estimates_["hessian"], second):
        assert_allclose(got, -fd, rtol=1e-5, atol=atol)
    for got, fd in zip(est.estimates_["score"], first):
        assert_allclose(got, fd**2, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("kind", ["softmax", "gaussian", "multilabel"])
@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_exact_diagonal_matches_finite_difference_jacobian(kind, activation):
    model, X, _ = _mlp(kind, activation, (3, 4, 3))
    X = X[:4]
    est = DiagonalFisherEstimator(model, noise_variance=0.7, random_state=0).fit(X)
    params = _params(model)
    expected = [np.zeros(p.shape) for p in params]
    for x in X:
        h = _natural(params, activation, x[None])[0]
        if kind == "softmax":
            p = np.exp(h - h.max())
            p /= p.sum()
            info = np.diag(p) - np.outer(p, p)
        elif kind == "gaussian":
            info = np.eye(len(h)) / 0.7
        else:
            s = 1 / (1 + np.exp(-h))
            info = np.diag(s * (1 - s))
        for e, J in zip(expected, _fd_jacobian(params, activation, x)):
            e += np.einsum("...c,cd,...d->...", J, info, J) / len(X)
    for got, exp in zip(est.fisher_exact_, expected):
        assert_allclose(got, exp, rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------
# Zero Hessian variance
# --------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_hessian_variance_zero_piecewise_linear(activation):
    model, X, _ = _mlp("softmax", activation, (5, 4))
    est = DiagonalFisherEstimator(model, n_label_samples=2, random_state=0).fit(X)
    for v, e, f in zip(est.variances_["hessian"], est.estimates_["hessian"],
                       est.fisher_exact_):
        assert_array_equal(v, 0.0)
        assert_allclose(e, f, rtol=1e-14, atol=0)


def test_hessian_variance_zero_last_layer_only():
    model, X, _ = _mlp("softmax", "logistic", (5, 4))
    est = DiagonalFisherEstimator(model, random_state=0).fit(X)
    names = est.parameter_names_
    for name, v in zip(names, est.variances_["hessian"]):
        if name in ("coefs_[2]", "intercepts_[2]"):
            assert_array_equal(v, 0.0)
        else:
            assert np.all(v > 0), name


# --------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------

MC_CASES = [("softmax", "logistic"), ("bernoulli", "tanh"), ("multilabel", "logistic"),
            ("gaussian", "tanh"), ("poisson", "tanh")]


@pytest.mark.parametrize("kind, activation", MC_CASES)
def test_monte_carlo_means_and_variances(kind, activation):
    """With many draws, the means converge to fisher_exact_ and the empirical
    variances to variances_; repeated fits have the closed-form variance."""
    model, X, _ = _mlp(kind, activation, (4, 3), n=12)
    # Poisson squared scores are heavy-tailed (small means): more draws.
    M = 20000 if kind == "poisson" else 3000
    est = DiagonalFisherEstimator(model, n_label_samples=M, random_state=0).fit(X)
    for key in ("score", "hessian"):
        mean = _flat(est.estimates_[key])
        exact = _flat(est.fisher_exact_)
        sd = np.sqrt(_flat(est.variances_[key]))
        z = np.abs(mean - exact)[sd > 0] / sd[sd > 0]
        assert np.all(z < 5.0), (key, z.max())
        assert_allclose(mean[sd == 0], exact[sd == 0], rtol=1e-13)
        v = _flat(est.variances_[key])
        ev = _flat(est.empirical_variances_[key])
        big = v > 1e-6 * v.max()
        assert_allclose(ev[big], v[big], rtol=0.15)

    # variance across independent fits with M = 1
    reps = np.array([
        np.concatenate([_flat(e.estimates_["score"]), _flat(e.estimates_["hessian"])])
        for e in (DiagonalFisherEstimator(model, random_state=s).fit(X) for s in range(300))
    ])
    one = DiagonalFisherEstimator(model, random_state=0).fit(X)
    v = np.concatenate([_flat(one.variances_["score"]), _flat(one.variances_["hessian"])])
    big = v > 1e-6 * v.max()
    ratio = reps.var(axis=0, ddof=1)[big] / v[big]
    # chi-square with 299 dof: sd of the ratio ~ sqrt(2/299) ~ 0.08 (more for
    # heavy-tailed estimators); check the typical and the extreme ratios.  The
    # squared Poisson scores at means ~0.1 are too heavy-tailed for 300 fits
    # to bound every ratio: their variances are checked above (M = 20000) and
    # their sampler in test_counter_based_label_moments.
    assert 0.85 < np.median(ratio) < 1.15, np.median(ratio)
    if kind != "poisson":
        assert np.all((ratio > 0.4) & (ratio < 2.0)), (ratio.min(), ratio.max())


def test_bounds_bracket_variances():
    cases = [_mlp(kind, act, (4, 3))[:2] for kind, act in MC_CASES]
    X, rng = _data(40, 3)
    cases.append((LogisticRegression().fit(X, rng.randint(0, 4, 40)), X))
    cases.append((Ridge().fit(X, rng.standard_normal((40, 3))), X))
    for model, X in cases:
        est = DiagonalFisherEstimator(model, random_state=0).fit(X)
        for key in ("score", "hessian"):
            for lo, v, hi in zip(est.variance_bounds_[key]["lower"], est.variances_[key],
                                 est.variance_bounds_[key]["upper"]):
                tol = 1e-12 * max(1.0, np.abs(hi).max())
                assert np.all(lo <= v + tol) and np.all(v <= hi + tol), type(model)
                assert np.all(lo >= 0)


def test_recommended_matches_variances():
    model, X, _ = _mlp("softmax", "logistic", (5, 4))
    est = DiagonalFisherEstimator(model, random_state=0).fit(X)
    for rec, v1, v2 in zip(est.recommended_, est.variances_["score"],
                           est.variances_["hessian"]):
        assert_array_equal(rec == "score", v1 < v2)
    assert DiagonalFisherEstimator(model, method="score").fit(X).recommended_ is None


def test_method_subsets_and_batch_size_agree():
    model, X, _ = _mlp("softmax", "tanh", (3, 4, 3), n=25)
    full = DiagonalFisherEstimator(model, random_state=0).fit(X)
    blocked = DiagonalFisherEstimator(model, random_state=0, batch_size=7).fit(X)
    for a, b in zip(full.fisher_exact_, blocked.fisher_exact_):
        assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(full.variances_["hessian"], blocked.variances_["hessian"]):
        assert_allclose(a, b, rtol=1e-12)
    # The labels are counter-based: the block size changes rounding only.
    for key in ("score", "hessian"):
        for a, b in zip(full.estimates_[key], blocked.estimates_[key]):
            assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    only = DiagonalFisherEstimator(model, method="hessian", random_state=0).fit(X)
    assert set(only.estimates_) == {"hessian"}
    for a, b in zip(full.estimates_["hessian"], only.estimates_["hessian"]):
        assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("method", ["score", "hessian", "both", "exact"])
def test_options_compute_only_what_is_asked_and_agree_with_the_full_fit(method):
    """method and compute_variances pick what is computed; every fitted value
    equals that of the full fit (same counter-based labels)."""
    model, X, _ = _mlp("softmax", "logistic", (5, 4), n=40)
    full = DiagonalFisherEstimator(model, n_label_samples=3, random_state=0).fit(X)
    keys = {"score": ["score"], "hessian": ["hessian"], "both": ["score", "hessian"],
            "exact": []}[method]
    for with_variances in (True, False):
        est = DiagonalFisherEstimator(model, method=method, n_label_samples=3,
                                      compute_variances=with_variances, random_state=0).fit(X)
        assert sorted(est.estimates_) == sorted(keys)
        for key in keys:
            for a, b in zip(est.estimates_[key], full.estimates_[key], strict=True):
                assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        # The squared score alone without variances needs no exact diagonal.
        if method == "score" and not with_variances:
            assert est.fisher_exact_ is None
        else:
            for a, b in zip(est.fisher_exact_, full.fisher_exact_, strict=True):
                assert_allclose(a, b, rtol=1e-12)
        if with_variances:
            for key in keys:
                for a, b in zip(est.variances_[key], full.variances_[key], strict=True):
                    assert_allclose(a, b, rtol=1e-12)
            for a, b in zip(est.x_variances_, full.x_variances_, strict=True):
                assert_allclose(a, b, rtol=1e-10)
        else:
            assert est.variances_ is None and est.x_variances_ is None
            assert est.empirical_variances_ is None and est.variance_bounds_ is None
        assert (est.recommended_ is not None) == (method == "both" and with_variances)


def test_deterministic_and_frozen_clone():
    model, X, _ = _mlp("softmax", "tanh", (4,))
    before = [c.copy() for c in model.coefs_ + model.intercepts_]
    est = DiagonalFisherEstimator(FrozenEstimator(model), random_state=0)
    a = clone(est).fit(X)
    b = clone(est).fit(X)
    for key in ("score", "hessian"):
        for u, v in zip(a.estimates_[key], b.estimates_[key]):
            assert_array_equal(u, v)
    # the wrapped model is not modified (snapshot taken before fitting)
    for old, new in zip(before, model.coefs_ + model.intercepts_):
        assert_array_equal(old, new)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_bad_inputs():
    model, X, _ = _mlp("softmax", "tanh", (4,))
    with pytest.raises(NotFittedError):
        DiagonalFisherEstimator(MLPClassifier()).fit(X)
    with pytest.raises(NotFittedError):
        DiagonalFisherEstimator(LogisticRegression()).fit(X)
    with pytest.raises(TypeError, match="does not support KMeans"):
        DiagonalFisherEstimator(KMeans(2).fit(X)).fit(X)
    with pytest.raises(TypeError, match="needs a fitted estimator"):
        DiagonalFisherEstimator().fit(X)
    with pytest.raises(ValueError, match="X has 2 features"):
        DiagonalFisherEstimator(model).fit(X[:, :2])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DiagonalFisherEstimator(model).fit(X_nan)
    with pytest.raises(ValueError, match="method"):
        DiagonalFisherEstimator(model, method="bogus").fit(X)
    with pytest.raises(ValueError, match="n_label_samples"):
        DiagonalFisherEstimator(model, n_label_samples=0).fit(X)
    reg, Xr, yr = _mlp("gaussian", "tanh", (4,))
    with pytest.raises(ValueError, match="needs the targets"):
        DiagonalFisherEstimator(reg, noise_variance="auto").fit(Xr)
    for bad in (np.nan, np.inf):
        y_bad = np.array(yr, dtype=float)
        y_bad[0] = bad
        with pytest.raises(ValueError, match="y contains (NaN|infinity)"):
            DiagonalFisherEstimator(reg, noise_variance="auto").fit(Xr, y_bad)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        DiagonalFisherEstimator(reg, noise_variance="auto").fit(Xr, yr[:-1])
    broken = LogisticRegression().fit(X, np.arange(len(X)) % 2)
    broken.coef_[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite .* parameters"):
        DiagonalFisherEstimator(broken).fit(X)


def test_sampled_direction_hessian_path_matches():
    """Without variances only the sampled directions are backpropagated."""
    from skmoe.inspection._fisher_statistics import fisher_statistics

    model, X, _ = _mlp("softmax", "logistic", (3, 4, 3), n=20)
    net = _extract_network(model)
    full = fisher_statistics(net, X, n_draws=2, random_state=0)
    fast = fisher_statistics(net, X, n_draws=2, random_state=0, with_variances=False)
    assert "var_hessian" not in fast
    for key in ("fisher", "score", "hessian"):
        for (w1, b1), (w2, b2) in zip(full[key], fast[key]):
            assert_allclose(w1, w2, rtol=1e-10, atol=1e-14)
            assert_allclose(b1, b2, rtol=1e-10, atol=1e-14)


def test_no_intercept_means_no_intercept_entries():
    """fit_intercept=False: only coef_ is a parameter; its diagonal is E[x_j^2] / sigma^2."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 3)) + 1.0
    Y = X @ rng.standard_normal((3, 2)) + 0.1 * rng.standard_normal((200, 2))
    model = Ridge(alpha=1e-3, fit_intercept=False).fit(X, Y)
    est = DiagonalFisherEstimator(model, noise_variance=2.0, random_state=0).fit(X)
    assert est.parameter_names_ == ["coef_"]
    assert len(est.fisher_exact_) == 1
    expected = np.broadcast_to(np.mean(X**2, axis=0) / 2.0, model.coef_.shape)
    assert_allclose(est.fisher_exact_[0], expected, rtol=1e-12)


def test_results_do_not_depend_on_thread_count(monkeypatch):
    """Several row blocks of unit statistics and pieces of products, 1 vs 3
    threads: bitwise identical."""
    from skmoe.utils import _threading

    model, X, _ = _mlp("softmax", "tanh", (4, 3), n=300)
    assert len(X) > 2 * _k._UNIT_BLOCK_ROWS
    # Small product pieces, so that the BLAS products are split too.
    monkeypatch.setattr(_k, "_PRODUCT_ROWS", 64)
    monkeypatch.setattr(_k, "_PRODUCT_COLUMNS", 3)
    fits = []
    for threads in (1, 3):
        monkeypatch.setattr(_threading, "n_threads", lambda threads=threads: threads)
        fits.append(DiagonalFisherEstimator(model, n_label_samples=2, random_state=0).fit(X))
    for name in ("fisher_exact_", "variances_", "empirical_variances_", "estimates_"):
        first, second = getattr(fits[0], name), getattr(fits[1], name)
        if isinstance(first, dict):
            first, second = sum(first.values(), []), sum(second.values(), [])
        for a, b in zip(first, second):
            assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["softmax", "gaussian"])
def test_x_variances_equal_row_by_row_fisher_variance(kind):
    """x_variances_ = Var_n I(theta | x_n) / N, with I(. | x_n) from one-row fits."""
    model, X, _ = _mlp(kind, "tanh", (3,), n=25)
    fisher = DiagonalFisherEstimator(model, random_state=0).fit(X)
    per_row = [DiagonalFisherEstimator(model, random_state=0).fit(X[i:i + 1]).fisher_exact_
               for i in range(len(X))]
    for j, x_variance in enumerate(fisher.x_variances_):
        rows = np.stack([fits[j] for fits in per_row])
        assert_allclose(x_variance, rows.var(axis=0, ddof=1) / len(X), rtol=1e-9, atol=1e-15)


def test_softmax_hessian_lower_bound_is_informative():
    """Softmax: V2 >= lambda_2(I) |w - mean(w)|^2 > 0 in the hidden layers (not just 0)."""
    model, X, _ = _mlp("softmax", "tanh", (4, 3))
    est = DiagonalFisherEstimator(model, method="hessian", random_state=0).fit(X)
    n_layers = len(model.coefs_)
    bounds = est.variance_bounds_["hessian"]
    for j in list(range(n_layers - 1)) + [n_layers + j for j in range(n_layers - 1)]:
        lower, variance, upper = bounds["lower"][j], est.variances_["hessian"][j], bounds["upper"][j]
        assert np.all(lower > 0), est.parameter_names_[j]
        assert np.all(lower <= variance * (1 + 1e-12)) and np.all(variance <= upper * (1 + 1e-12))
    # The last layer has no Hessian term: all three vanish.
    assert_array_equal(bounds["upper"][n_layers - 1], 0.0)


# --------------------------------------------------------------------------
# Fit protocol: atomic fit, one random state, fitted state only
# --------------------------------------------------------------------------


def _fitted_state(est):
    import pickle

    return {k: pickle.dumps(v) for k, v in vars(est).items()}


def test_failed_refit_leaves_the_fitted_state_unchanged():
    """A refit that fails after family_ and noise_variance_ were computed restores them."""
    clf, X, _ = _mlp("softmax", "tanh", (4,))
    est = DiagonalFisherEstimator(clf, random_state=0).fit(X)
    state = _fitted_state(est)
    reg, Xr, _ = _mlp("gaussian", "tanh", (4,), d=5)
    # Fails in _noise_variance, i.e. after X (5 features) was validated and
    # the Gaussian family recognised.
    est.set_params(estimator=reg, noise_variance="auto")
    with pytest.raises(ValueError, match="needs the targets"):
        est.fit(Xr)
    est.set_params(estimator=clf, noise_variance=1.0)
    assert _fitted_state(est) == state
    assert est.n_features_in_ == 3 and est.family_ == "softmax" and est.noise_variance_ is None
    # A first fit that fails leaves no fitted attribute behind.
    fresh = DiagonalFisherEstimator(reg, noise_variance="auto")
    with pytest.raises(ValueError, match="needs the targets"):
        fresh.fit(Xr)
    assert not [k for k in vars(fresh) if k.endswith("_")]


def test_set_params_after_fit_changes_no_fitted_attribute():
    model, X, _ = _mlp("softmax", "tanh", (4,))
    est = DiagonalFisherEstimator(model, random_state=0).fit(X)
    fitted = {k: v for k, v in _fitted_state(est).items() if k.endswith("_")}
    est.set_params(method="score", n_label_samples=3, random_state=1, batch_size=2)
    assert {k: v for k, v in _fitted_state(est).items() if k.endswith("_")} == fitted


@pytest.mark.parametrize("kind", ["softmax", "gaussian", "linear"])
def test_float32_input_gives_the_float64_results_in_float32(kind):
    """float32 X: the same float64 computation, stored once in float32."""
    if kind == "linear":
        X, rng = _data(40, 3)
        model = LinearRegression().fit(X, X @ rng.standard_normal(3))
    else:
        model, X, _ = _mlp(kind, "tanh", (4, 3))
    X32 = X.astype(np.float32)
    f32 = DiagonalFisherEstimator(model, random_state=0).fit(X32)
    f64 = DiagonalFisherEstimator(model, random_state=0).fit(X32.astype(np.float64))

    def arrays(est):
        out = list(est.fisher_exact_) + list(est.x_variances_)
        for name in ("estimates_", "variances_", "empirical_variances_"):
            for key in ("score", "hessian"):
                out += getattr(est, name)[key]
        for key in ("score", "hessian"):
            out += est.variance_bounds_[key]["lower"] + est.variance_bounds_[key]["upper"]
        return out

    for a32, a64 in zip(arrays(f32), arrays(f64), strict=True):
        assert a32.dtype == np.float32 and a64.dtype == np.float64
        assert_array_equal(a32, a64.astype(np.float32))
    for r32, r64 in zip(f32.recommended_, f64.recommended_, strict=True):
        assert_array_equal(r32, r64)
    assert f32.noise_variance_ == f64.noise_variance_


def test_one_random_state_per_fit(monkeypatch):
    """fit resolves random_state once and hands that instance to the statistics."""
    from skmoe.inspection import _fisher

    model, X, _ = _mlp("softmax", "tanh", (4,))
    seen = []
    original = _fisher.fisher_statistics

    def recording(*args, random_state, **kwargs):
        seen.append(random_state)
        return original(*args, random_state=random_state, **kwargs)

    monkeypatch.setattr(_fisher, "fisher_statistics", recording)
    rng = np.random.RandomState(0)
    first = DiagonalFisherEstimator(model, random_state=rng).fit(X)
    assert seen == [rng]
    second = DiagonalFisherEstimator(model, random_state=0).fit(X)
    assert isinstance(seen[1], np.random.RandomState)
    assert_array_equal(first.estimates_["score"][0], second.estimates_["score"][0])
