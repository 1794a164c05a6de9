"""DiagonalFisherEstimator on Dask arrays: a real two-process LocalCluster."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skmoe import DiagonalFisherEstimator

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _data(kind, n=230, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "softmax":
            model = MLPClassifier(hidden_layer_sizes=(5, 4), activation="tanh", max_iter=30,
                                  random_state=0).fit(X, rng.randint(0, 3, n))
        elif kind == "gaussian":
            model = MLPRegressor(hidden_layer_sizes=(5,), activation="logistic", max_iter=30,
                                 random_state=0).fit(X, y)
        else:
            model = LinearRegression().fit(X, y)
    return model, X, y, rng.randint(0, 4, n).astype(float)


def _arrays(est):
    out = list(est.fisher_exact_) + list(est.x_variances_)
    for key in sorted(est.estimates_):
        out += est.estimates_[key] + est.variances_[key] + est.empirical_variances_[key]
        out += est.variance_bounds_[key]["lower"] + est.variance_bounds_[key]["upper"]
    return out


@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_dask_fit_equals_numpy_fit_on_a_local_cluster(client, kind):
    """Every fitted attribute, unit and integer weights, uneven chunks: 1e-10."""
    model, X, y, weights = _data(kind)
    noise = "auto" if kind != "softmax" else 1.0
    params = dict(n_label_samples=2, noise_variance=noise, random_state=0)
    chunks = (50, 80, 17, 83)
    X_dask = da.from_array(X, chunks=(chunks, 2))  # also split across columns
    for sample_weight in (None, weights):
        ref = DiagonalFisherEstimator(model, **params).fit(X, y, sample_weight=sample_weight)
        w_dask = None if sample_weight is None else da.from_array(sample_weight, chunks=60)
        est = DiagonalFisherEstimator(model, **params).fit(X_dask, da.from_array(y, chunks=40),
                                                          sample_weight=w_dask)
        assert est.n_features_in_ == X.shape[1]
        if ref.noise_variance_ is not None:
            assert est.noise_variance_ == pytest.approx(ref.noise_variance_, rel=1e-12)
        scale = max(np.abs(a).max() for a in ref.fisher_exact_)
        for a, b in zip(_arrays(est), _arrays(ref), strict=True):
            assert isinstance(a, np.ndarray)
            assert np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), scale**2)


def test_dask_options_and_float32(client):
    model, X, _, _ = _data("softmax")
    X_dask = da.from_array(X.astype(np.float32), chunks=64)
    for method, with_variances in (("score", False), ("exact", True), ("hessian", False)):
        params = dict(method=method, compute_variances=with_variances, random_state=1)
        est = DiagonalFisherEstimator(model, **params).fit(X_dask)
        ref = DiagonalFisherEstimator(model, **params).fit(X.astype(np.float32))
        for key in est.estimates_:
            for a, b in zip(est.estimates_[key], ref.estimates_[key], strict=True):
                assert a.dtype == np.float32
                np.testing.assert_allclose(a, b, rtol=1e-6)


def test_dask_bad_input_is_a_clear_error(client):
    model, X, _, weights = _data("softmax")
    X_bad = X.copy()
    X_bad[100, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        DiagonalFisherEstimator(model).fit(da.from_array(X_bad, chunks=64))
    with pytest.raises(ValueError, match="Negative values"):
        DiagonalFisherEstimator(model).fit(da.from_array(X, chunks=64),
                                           sample_weight=da.from_array(-weights, chunks=64))
    with pytest.raises(ValueError, match="X has 3 features"):
        DiagonalFisherEstimator(model).fit(da.from_array(X[:, :3], chunks=64))
