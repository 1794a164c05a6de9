"""``sample_weight`` of the neural-network estimators: weights act as repeated or dropped rows."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor
from skmoe.neural_network import _mlp_numba as _mlp
from skmoe.neural_network import _routing

# --------------------------------------------------------------------------
# MixtureOfMLPs
# --------------------------------------------------------------------------


def _layout(sizes, prelu):
    return (np.asarray(sizes, dtype=np.int64), *_mlp.layer_offsets(sizes, prelu)[:4], prelu)


@pytest.mark.parametrize("loss_kind, n_out", [(0, 2), (1, 1), (2, 3)])
def test_weighted_batch_loss_and_gradient_equal_repeated_rows(loss_kind, n_out):
    """Kernel level: a row of integer weight w is exactly w copies of the row
    (loss, every gradient entry and the penalty scaled by the total weight)."""
    rng = np.random.RandomState(0)
    sizes = [3, 5, 4, n_out]
    params = rng.standard_normal(_mlp.layer_offsets(sizes, True)[4])
    X = rng.standard_normal((11, 3))
    Y = rng.standard_normal((11, n_out)) if loss_kind == 0 else np.eye(max(n_out, 2))[
        rng.randint(0, max(n_out, 2), 11)][:, -n_out:]
    weights = rng.randint(1, 4, 11).astype(float)
    layout = _layout(sizes, True)
    loss_w, grad_w = _mlp.mean_loss(params, X, Y, weights, *layout, loss_kind, 0.3)
    Xr, Yr = np.repeat(X, weights.astype(int), axis=0), np.repeat(Y, weights.astype(int), axis=0)
    loss_r, grad_r = _mlp.mean_loss(params, Xr, Yr, np.ones(len(Xr)), *layout, loss_kind, 0.3)
    assert_allclose(loss_w, loss_r, rtol=1e-12)
    assert_allclose(grad_w, grad_r, rtol=1e-10, atol=1e-14)
    # And the weights matter: the unweighted batch differs.
    loss_u, _ = _mlp.mean_loss(params, X, Y, np.ones(11), *layout, loss_kind, 0.3)
    assert abs(loss_u - loss_w) > 1e-6


def _regression_data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(size=(n, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1] ** 2
    return X, y


def _classification_data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)  # 3 classes
    return X, y


def _fitted_attributes(model):
    return {
        name: getattr(model, name)
        for name in ("prototypes_", "expert_of_cell_", "expert_params_", "expert_is_mlp_",
                     "expert_constants_", "experts_n_iter_", "n_parameters_")
    }


def _assert_same_fit(a, b, rtol):
    for name, value in _fitted_attributes(a).items():
        assert_allclose(value, getattr(b, name), rtol=rtol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "Estimator, data", [(MixtureOfMLPsRegressor, _regression_data),
                        (MixtureOfMLPsClassifier, _classification_data)],
)
def test_integer_weights_equal_repeated_rows(Estimator, data):
    """Full-batch training (deterministic given the seed) on a grid router:
    integer weights give the fit of the repeated rows on every fitted array."""
    X, y = data()
    weights = np.random.RandomState(1).randint(1, 4, X.shape[0])
    params = dict(n_experts=4, routing="grid", hidden_layer_sizes=(6,), batch_size=10_000,
                  learning_rate_init=1e-2, max_iter=25, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        weighted = Estimator(**params).fit(X, y, sample_weight=weights)
        repeated = Estimator(**params).fit(np.repeat(X, weights, axis=0), np.repeat(y, weights))
        unweighted = Estimator(**params).fit(X, y)
    _assert_same_fit(weighted, repeated, rtol=1e-10)
    assert not np.allclose(weighted.expert_params_, unweighted.expert_params_, rtol=1e-3)


@pytest.mark.parametrize(
    "Estimator, data", [(MixtureOfMLPsRegressor, _regression_data),
                        (MixtureOfMLPsClassifier, _classification_data)],
)
@pytest.mark.parametrize("routing", ["kmeans", "bisecting"])
def test_zero_weight_equals_dropped_rows(Estimator, data, routing):
    """Mini-batch training, k-means routing: zero-weight rows change nothing."""
    X, y = data()
    weights = np.random.RandomState(2).uniform(0.5, 2.0, X.shape[0])
    weights[::4] = 0.0
    params = dict(n_experts=3, routing=routing, hidden_layer_sizes=(6,), batch_size=8,
                  max_iter=15, tol=0.0, random_state=0)
    keep = weights > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_zeros = Estimator(**params).fit(X, y, sample_weight=weights)
        dropped = Estimator(**params).fit(X[keep], y[keep], sample_weight=weights[keep])
    _assert_same_fit(with_zeros, dropped, rtol=0)
    assert_array_equal(with_zeros.predict(X), dropped.predict(X))


def test_weighted_kmeans_prototypes_are_weighted_centroids():
    """At convergence each prototype is the weighted mean of its Voronoi cell
    (the unweighted mean is far from it)."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((400, 2))
    weights = np.exp(2 * X[:, 0])
    prototypes = _routing.kmeans_prototypes(X, 3, np.random.RandomState(0), weights)
    cells = _routing.route_flat(X, prototypes)
    for c in range(3):
        rows = cells == c
        assert_allclose(prototypes[c], np.average(X[rows], axis=0, weights=weights[rows]),
                        rtol=1e-6, atol=1e-6)
        assert np.abs(prototypes[c] - X[rows].mean(axis=0)).max() > 1e-2


# Two epochs are enough for the cell bookkeeping tested here.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_weighted_small_cells_count_total_weight():
    """min_samples_cell compares a cell's total weight: rows of weight 2 keep
    cells that their row counts alone would merge, as their repetitions
    would; light rows make a cell small."""
    X, y = _regression_data(n=60)
    params = dict(n_experts=2, routing=np.array([[0.1, 0.5], [0.9, 0.5]]),
                  hidden_layer_sizes=(4,), max_iter=2, min_samples_cell=40, random_state=0)
    rows = np.bincount((X[:, 0] > 0.5).astype(int))
    assert rows.max() < 40 <= 2 * rows.min()
    with pytest.warns(UserWarning, match="merged"):
        MixtureOfMLPsRegressor(**params).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message=".*merged")
        model = MixtureOfMLPsRegressor(**params).fit(
            X, y, sample_weight=np.full(60, 2.0))
    assert model.expert_is_mlp_.all() and (model.expert_of_cell_ == [0, 1]).all()
    weights = np.where(X[:, 0] > 0.5, 0.5, 2.0)
    with pytest.warns(UserWarning, match=r"merged.*1 -> 0"):
        MixtureOfMLPsRegressor(**params).fit(X, y, sample_weight=weights)


@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (-np.ones(30), "(?i)negative"),
        (np.r_[np.nan, np.ones(29)], "NaN"),
        (np.r_[1.0, np.zeros(29)], "at least 2 samples"),
        (np.ones(29), "sample_weight.shape"),
    ],
)
def test_bad_sample_weight(Estimator, sample_weight, match):
    X, y = _classification_data(n=30)
    with pytest.raises(ValueError, match=match):
        Estimator(n_experts=2, max_iter=2).fit(X, y, sample_weight=sample_weight)


# --------------------------------------------------------------------------
# SGDMoERegressor
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_draws", [7, 100, 1000])
def test_systematic_resampling_counts_are_floor_or_ceil_of_expected(n_draws):
    """Row i is drawn floor or ceil of n w_i / W times; weight 0 never."""
    from skmoe.neural_network._sgd_moe import systematic_resample

    rng = np.random.RandomState(0)
    weights = rng.uniform(size=40)
    weights[::5] = 0.0
    for seed in range(5):
        draws = systematic_resample(weights, n_draws, np.random.RandomState(seed))
        counts = np.bincount(draws, minlength=40)
        expected = n_draws * weights / weights.sum()
        assert counts.sum() == n_draws
        assert np.all(counts >= np.floor(expected - 1e-9))
        assert np.all(counts <= np.ceil(expected + 1e-9))
        assert counts[::5].sum() == 0
        # Shuffled: the copies of a row are not all consecutive.
        if n_draws == 1000:
            assert np.mean(np.diff(draws) == 0) < 0.2


def test_weighted_ridge_equals_repeated_rows():
    """Stage 4 with integer weights is the ridge fit of the repeated rows."""
    from skmoe.neural_network._sgd_moe import _ridge

    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((200, 4)), rng.standard_normal(200)
    W = rng.standard_normal((2, 3, 4))
    W /= np.linalg.norm(W, axis=-1, keepdims=True)
    router = rng.standard_normal((2, 4))
    weights = rng.randint(1, 4, 200)
    weighted = _ridge(X, y, 3, W, router, 1, 1e-2, weights.astype(float))
    repeated = _ridge(np.repeat(X, weights, axis=0), np.repeat(y, weights), 3, W, router, 1, 1e-2)
    unweighted = _ridge(X, y, 3, W, router, 1, 1e-2)
    for a, b in zip(weighted, repeated):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not np.allclose(weighted[0], unweighted[0], rtol=1e-3)


def test_sgd_moe_zero_weight_equals_dropped_rows():
    from skmoe import SGDMoERegressor
    from skmoe.datasets import make_latent_cluster_regression

    X, y = make_latent_cluster_regression(3000, 8, random_state=0)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, 3000)
    weights[::3] = 0.0
    keep = weights > 0
    a = SGDMoERegressor(2, n_neurons=3, random_state=0).fit(X, y, sample_weight=weights)
    b = SGDMoERegressor(2, n_neurons=3, random_state=0).fit(
        X[keep], y[keep], sample_weight=weights[keep])
    for name in ("expert_weights_", "router_coef_", "expert_coef_", "expert_intercept_"):
        assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert_array_equal(a.history_["objective"], b.history_["objective"])


def test_sgd_moe_weights_steer_the_streams(monkeypatch):
    """A heavy half of the rows is used about w times as often per SGD step:
    with weight 3 on the rows of positive first feature, about 3/4 of every
    stage's stream comes from them (counted by recording the kernel calls)."""
    from skmoe import SGDMoERegressor
    from skmoe.neural_network import _sgd_moe_numba as kernels

    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((4000, 5)), rng.standard_normal(4000)
    heavy = X[:, 0] > 0
    weights = np.where(heavy, 3.0, 1.0)
    streams = []
    real = kernels.neuron_sgd

    def recording(X_, y_, idx, *args):
        streams.append(idx.copy())
        return real(X_, y_, idx, *args)

    monkeypatch.setattr(kernels, "neuron_sgd", recording)
    SGDMoERegressor(2, n_neurons=2, random_state=0).fit(X, y, sample_weight=weights)
    stream = np.concatenate(streams)
    expected = 3 * heavy.sum() / (3 * heavy.sum() + (~heavy).sum())
    assert abs(heavy[stream].mean() - expected) < 0.02
    assert abs(heavy.mean() - expected) > 0.2


def test_sgd_moe_bad_sample_weight():
    from skmoe import SGDMoERegressor

    X, y = np.random.RandomState(0).standard_normal((50, 3)), np.zeros(50)
    with pytest.raises(ValueError, match="(?i)negative"):
        SGDMoERegressor().fit(X, y, sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match="non-zero"):
        SGDMoERegressor().fit(X, y, sample_weight=np.zeros(50))
