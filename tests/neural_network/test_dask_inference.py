"""Lazy Dask inference of MixtureOfMLPs: dask input in, lazy dask array out, NumPy's values.

Computed with Dask's default (threaded) scheduler; the same on a
``distributed.LocalCluster`` with two worker processes is tested once, in
``test_mixture_of_mlps.py::test_dask_backend_gives_the_same_fit``.
"""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor


def _fit(Estimator, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Estimator(3, hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                         **params).fit(X, y)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(700, 3))
    return X, np.sin(3 * X[:, 0]) + X[:, 1], (X[:, 0] > 0).astype(int) + (X[:, 2] > 0.5)


def _counting_dask_array(X, chunk_rows):
    """``X`` as a Dask array whose blocks count how often they are computed."""
    calls = []

    def load(start, stop):
        calls.append(start)
        return X[start:stop]

    blocks = [
        da.from_delayed(dask.delayed(load)(start, min(start + chunk_rows, len(X))),
                        shape=(min(chunk_rows, len(X) - start), X.shape[1]), dtype=X.dtype)
        for start in range(0, len(X), chunk_rows)
    ]
    return da.concatenate(blocks, axis=0), calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("multi_output", [False, True])
def test_regressor_predict_and_route_are_lazy_and_equal_numpy(data, dtype, multi_output):
    X, y, _ = data
    X = X.astype(dtype)
    Y = np.column_stack([y, -y]) if multi_output else y
    model = _fit(MixtureOfMLPsRegressor, X, Y)
    X_dask, calls = _counting_dask_array(X, 200)
    pred, cells = model.predict(X_dask), model.route(X_dask)
    assert isinstance(pred, da.Array) and isinstance(cells, da.Array)
    assert calls == []  # nothing computed yet
    assert pred.chunks[0] == X_dask.chunks[0] and pred.dtype == dtype
    assert pred.shape == (len(X), 2) if multi_output else (len(X),)
    assert cells.dtype == np.int64
    pred_np = model.predict(X)
    computed = pred.compute()
    assert computed.dtype == pred_np.dtype
    assert_array_equal(computed, pred_np)
    assert_array_equal(cells.compute(), model.route(X))


def test_classifier_predict_proba_and_predict_equal_numpy(data):
    X, _, labels = data
    labels = np.array(["a", "b", "c"])[labels]
    model = _fit(MixtureOfMLPsClassifier, X, labels)
    X_dask = da.from_array(X, chunks=(250, 3))
    proba, pred = model.predict_proba(X_dask), model.predict(X_dask)
    assert isinstance(proba, da.Array) and proba.shape == (len(X), 3)
    assert pred.dtype == model.classes_.dtype
    assert_allclose(proba.compute(), model.predict_proba(X), rtol=0, atol=0)
    assert_array_equal(pred.compute(), model.predict(X))


def test_column_chunks_are_merged(data):
    """A Dask array chunked along columns too is predicted by row blocks."""
    X, y, _ = data
    model = _fit(MixtureOfMLPsRegressor, X, y)
    X_dask = da.from_array(X, chunks=(300, 2))
    assert_array_equal(model.predict(X_dask).compute(), model.predict(X))


def test_dask_input_errors(data):
    X, y, _ = data
    model = _fit(MixtureOfMLPsRegressor, X, y)
    with pytest.raises(ValueError, match="expecting a 2-D array with 3 features"):
        model.predict(da.from_array(X[:, :2], chunks=100))
    bad = X.copy()
    bad[5, 0] = np.nan
    lazy = model.predict(da.from_array(bad, chunks=(100, 3)))  # checked when computed
    with pytest.raises(ValueError, match="NaN"):
        lazy.compute()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MixtureOfMLPsRegressor().predict(da.from_array(X, chunks=100))
