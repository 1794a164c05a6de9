"""DiagonalFisherEstimator: sample weights and the counter-based label draws."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skmoe import DiagonalFisherEstimator
from skmoe.inspection import _fisher_numba as _k


def _model(kind, n=40, d=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "softmax":
            model = MLPClassifier(hidden_layer_sizes=(4, 3), activation="tanh", max_iter=30, random_state=0)
            model.fit(X, rng.randint(0, 3, n))
        elif kind == "gaussian":
            model = MLPRegressor(hidden_layer_sizes=(4,), activation="logistic", max_iter=30, random_state=0)
            model.fit(X, X @ np.ones(d) + rng.standard_normal(n))
        elif kind == "poisson":
            model = MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", loss="poisson", max_iter=30,
                                 random_state=0)
            model.fit(X, rng.poisson(1.0, n))
        elif kind == "bernoulli":
            model = LogisticRegression().fit(X, X[:, 0] > 0)
        else:
            model = LinearRegression().fit(X, X @ np.ones(d) + rng.standard_normal(n))
    return model, X, rng


def _all_arrays(est):
    """Every fitted array with the scale its rounding error is relative to."""
    fisher_scale = max(np.abs(a).max() for a in est.fisher_exact_)
    # x_variances_ = (mean of I^2 - (mean I)^2) / (N - 1): it may cancel to ~0
    # (a constant per-row Fisher), so it is compared relative to I^2.
    out = [(a, np.abs(a).max()) for a in est.fisher_exact_]
    out += [(a, fisher_scale**2) for a in est.x_variances_]
    for key in sorted(est.estimates_):
        for name in ("estimates_", "variances_", "empirical_variances_"):
            out += [(a, np.abs(a).max()) for a in getattr(est, name)[key]]
        for side in ("lower", "upper"):
            out += [(a, np.abs(a).max()) for a in est.variance_bounds_[key][side]]
    return out


def _assert_same_fit(a, b, rtol=1e-10):
    if b.noise_variance_ is None:
        assert a.noise_variance_ is None
    else:
        assert a.noise_variance_ == pytest.approx(b.noise_variance_, rel=rtol)
    for (u, _), (v, scale) in zip(_all_arrays(a), _all_arrays(b), strict=True):
        assert np.abs(u - v).max() <= rtol * scale
    if a.recommended_ is not None:
        for u, v in zip(a.recommended_, b.recommended_, strict=True):
            # ties between equal variances may round either way
            assert np.mean(u == v) > 0.99


@pytest.mark.parametrize("kind", ["softmax", "gaussian", "poisson", "bernoulli", "linear"])
def test_integer_weights_equal_repeated_rows_and_zero_weights_dropped_rows(kind):
    model, X, rng = _model(kind)
    y = X.sum(axis=1)
    weights = rng.randint(0, 4, len(X))
    weights[:3] = [0, 2, 3]
    noise = "auto" if kind in ("gaussian", "linear") else 1.0
    params = dict(n_label_samples=2, noise_variance=noise, random_state=0)
    weighted = DiagonalFisherEstimator(model, **params).fit(X, y, sample_weight=weights)
    repeated = DiagonalFisherEstimator(model, **params).fit(
        np.repeat(X, weights, axis=0), np.repeat(y, weights))
    _assert_same_fit(weighted, repeated)
    # Zero weights only: the same as dropping those rows.
    keep = weights > 0
    zero_one = DiagonalFisherEstimator(model, **params).fit(X, y, sample_weight=keep * 1.0)
    dropped = DiagonalFisherEstimator(model, **params).fit(X[keep], y[keep])
    _assert_same_fit(zero_one, dropped)


def test_unit_weights_equal_no_weights_bitwise():
    model, X, _ = _model("softmax")
    a = DiagonalFisherEstimator(model, random_state=0).fit(X)
    b = DiagonalFisherEstimator(model, random_state=0).fit(X, sample_weight=np.ones(len(X)))
    for (u, _), (v, _) in zip(_all_arrays(a), _all_arrays(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_fractional_weights_are_unbiased_with_the_stated_variance():
    """Weight s = 2.5: three copies of weight 5/6.  Over many seeds, the mean of
    the weighted estimates is the weighted exact Fisher, and their variance is
    variances_ (which carries s^2 / ceil(s) per row)."""
    model, X, rng = _model("softmax", n=8)
    weights = rng.uniform(0.2, 3.0, len(X))
    exact = DiagonalFisherEstimator(model, method="exact").fit(X, sample_weight=weights)
    ref = DiagonalFisherEstimator(model, random_state=0).fit(X, sample_weight=weights)
    reps = np.array([
        np.concatenate([a.ravel() for a in DiagonalFisherEstimator(
            model, method="score", compute_variances=False, random_state=seed
        ).fit(X, sample_weight=weights).estimates_["score"]])
        for seed in range(400)
    ])
    flat_exact = np.concatenate([a.ravel() for a in exact.fisher_exact_])
    flat_var = np.concatenate([a.ravel() for a in ref.variances_["score"]])
    big = flat_var > 1e-6 * flat_var.max()
    z = (reps.mean(axis=0) - flat_exact)[big] / np.sqrt(flat_var[big] / len(reps))
    assert np.all(np.abs(z) < 5.0), np.abs(z).max()
    ratio = reps.var(axis=0, ddof=1)[big] / flat_var[big]
    assert 0.85 < np.median(ratio) < 1.15, np.median(ratio)


@pytest.mark.parametrize(
    "sampler, mean, moments",
    [
        ("poisson", 0.3, lambda lam: (lam, lam * (1 + 3 * lam))),
        ("poisson", 4.0, lambda lam: (lam, lam * (1 + 3 * lam))),
        ("poisson", 35.0, lambda lam: (lam, lam * (1 + 3 * lam))),  # PTRS branch
        ("bernoulli", 0.2, lambda p: (p * (1 - p), p * (1 - p) * (1 - 3 * p * (1 - p)))),
        ("gaussian", 0.0, lambda _: (2.0, 3 * 2.0**2)),  # inv_sigma2 = 2
    ],
)
def test_counter_based_label_moments(sampler, mean, moments):
    """Mean 0, variance and fourth central moment of the drawn residuals, to
    Monte Carlo accuracy, over many virtual copies and draws."""
    n, M = 20000, 5
    inv_sigma2 = 2.0 if sampler == "gaussian" else 1.0
    copies = np.ones(n, dtype=np.int64)
    row_ptr = np.arange(0, M * n + 1, M, dtype=np.int64)
    R = _k.draw_residuals(_k.SAMPLER_CODES[sampler], np.full((n, 2), mean), inv_sigma2,
                          np.arange(n, dtype=np.int64), copies, M, 7, row_ptr)
    var, mu4 = moments(mean)
    r = R.ravel()
    assert abs(r.mean()) < 5 * np.sqrt(var / r.size)
    assert_allclose(r.var(), var, rtol=5 * np.sqrt((mu4 - var**2) / r.size) / var)
    assert_allclose((r**4).mean(), mu4, rtol=0.1)
    # The two outputs of one draw, and the draws of one copy, are uncorrelated.
    assert abs(np.corrcoef(R[:, 0], R[:, 1])[0, 1]) < 5 / np.sqrt(len(R))
    assert abs(np.corrcoef(R[::M, 0], R[1::M, 0])[0, 1]) < 5 / np.sqrt(n)


def test_softmax_labels_follow_the_probabilities():
    n = 50000
    p = np.array([0.1, 0.6, 0.3])
    row_ptr = np.arange(n + 1, dtype=np.int64)
    R = _k.draw_residuals(_k.SAMPLER_CODES["softmax"], np.tile(p, (n, 1)), 1.0,
                          np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64), 1, 3,
                          row_ptr)
    labels = np.argmax(R + p, axis=1)
    frequencies = np.bincount(labels, minlength=3) / n
    assert np.all(np.abs(frequencies - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_draws_depend_only_on_the_seed_and_the_copy_index():
    """A row's labels are the same wherever it sits in a block."""
    mean = np.full((6, 2), 2.0)
    copies = np.array([1, 0, 2, 1, 3, 1], dtype=np.int64)
    first = 10 + np.concatenate([[0], np.cumsum(copies)[:-1]])
    row_ptr = np.concatenate([[0], np.cumsum(copies * 2)]).astype(np.int64)
    whole = _k.draw_residuals(2, mean, 1.0, first, copies, 2, 5, row_ptr)
    tail = _k.draw_residuals(2, mean[3:], 1.0, first[3:], copies[3:], 2, 5,
                             row_ptr[3:] - row_ptr[3])
    np.testing.assert_array_equal(whole[row_ptr[3]:], tail)
    other_seed = _k.draw_residuals(2, mean, 1.0, first, copies, 2, 6, row_ptr)
    assert not np.array_equal(whole, other_seed)


def test_bad_sample_weight():
    model, X, _ = _model("softmax")
    est = DiagonalFisherEstimator(model, random_state=0)
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        est.fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="sample_weight.shape"):
        est.fit(X, sample_weight=np.ones(len(X) + 1))
    with pytest.raises(ValueError, match="at least one non-zero"):
        est.fit(X, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X, sample_weight=np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="labels in one block .* smaller weights"):
        est.fit(X, sample_weight=np.full(len(X), 1e12))
    assert not hasattr(est, "fisher_exact_")
    # The exact diagonal alone draws no label: any weight scale is fine.
    exact = DiagonalFisherEstimator(model, method="exact").fit(
        X, sample_weight=np.full(len(X), 1e12))
    reference = DiagonalFisherEstimator(model, method="exact").fit(X)
    for a, b in zip(exact.fisher_exact_, reference.fisher_exact_, strict=True):
        assert_allclose(a, b, rtol=1e-12)
