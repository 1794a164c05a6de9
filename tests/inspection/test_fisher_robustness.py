"""DiagonalFisherEstimator on extreme inputs (issue 15.3, 15.4)."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPRegressor

from skmoe import DiagonalFisherEstimator


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    return X, X @ np.array([1.0, 2.0, 3.0]) + 0.1 * rng.standard_normal(60)


def _models(X, y):
    return [
        LinearRegression().fit(X, y),
        LogisticRegression().fit(X, y > 0),
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y),
    ]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("scale", [1e80, 1e150])
def test_huge_inputs_raise_instead_of_storing_inf_or_nan(data, index, scale):
    X, y = data
    model = _models(X, y)[index]
    fisher = DiagonalFisherEstimator(model, random_state=0)
    with pytest.raises(ValueError, match="Fisher statistic .* is not finite.*rescale"):
        fisher.fit(X * scale)
    assert not hasattr(fisher, "variances_")
    # The same estimator still fits (finitely) at a sane scale.
    fisher.fit(X)
    for key in ("score", "hessian"):
        for arrays in (fisher.variances_[key], fisher.variance_bounds_[key]["upper"],
                       fisher.variance_bounds_[key]["lower"], fisher.estimates_[key]):
            assert all(np.all(np.isfinite(a)) for a in arrays)


@pytest.mark.parametrize("noise_variance", [1e-300, 1e-200, 1e-160])
def test_tiny_noise_variance_is_a_clear_value_error(data, noise_variance):
    X, y = data
    model = LinearRegression().fit(X, y)
    with pytest.raises(ValueError, match="noise_variance=.* is too small"):
        DiagonalFisherEstimator(model, noise_variance=noise_variance).fit(X)


def test_small_but_representable_noise_variance_gives_finite_results(data):
    X, y = data
    model = LinearRegression().fit(X, y)
    ref = DiagonalFisherEstimator(model, random_state=0).fit(X)
    small = DiagonalFisherEstimator(model, noise_variance=1e-100, random_state=0).fit(X)
    # The exact Fisher scales as 1 / sigma^2: finite and exactly rescaled.
    for a, b in zip(small.fisher_exact_, ref.fisher_exact_):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b * 1e100, rtol=1e-12)
    for arrays in small.variances_.values():
        assert all(np.all(np.isfinite(a)) for a in arrays)
