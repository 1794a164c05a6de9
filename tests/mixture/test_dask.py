"""The Dask backend of GaussianGatedMoERegressor, on a real multi-process cluster.

The dask fit maps the numba pass over row chunks and tree-sums the
statistics; from the same starting point it must equal the NumPy fit to
rounding, and predictions on Dask input must be lazy and equal NumPy's.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from skmoe import GaussianGatedMoERegressor  # noqa: E402
from skmoe.datasets import make_gaussian_gated_moe  # noqa: E402
from _starts import dict_start  # noqa: E402

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "coef_",
          "intercept_", "noise_covariances_", "lower_bound_"]


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "port in use" and similar start-up notes
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data():
    X, y, params = make_gaussian_gated_moe(
        3000, 3, n_components=3, return_params=True, random_state=0
    )
    # Uneven row chunks, with y chunked differently from X.
    Xd = da.from_array(X, chunks=((700, 1300, 1000), (2, 1)))
    yd = da.from_array(y, chunks=1100)
    return X, y, Xd, yd, params


def _fit_both(data, covariance_type, **fit_kwargs):
    X, y, Xd, yd, params = data
    kwargs = dict(n_components=3, covariance_type=covariance_type,
                  init_params=dict_start(params, covariance_type), tol=0.0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges
        on_dask = GaussianGatedMoERegressor(**kwargs).fit(Xd, yd, **fit_kwargs)
        on_numpy = GaussianGatedMoERegressor(**kwargs).fit(X, y, **fit_kwargs)
    return on_dask, on_numpy


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_numpy_fit(client, data, covariance_type):
    on_dask, on_numpy = _fit_both(data, covariance_type)
    for name in FITTED:
        value = getattr(on_dask, name)
        assert isinstance(value, (np.ndarray, float)), name
        assert_allclose(value, getattr(on_numpy, name), rtol=1e-10, atol=0, err_msg=name)
    assert on_dask.n_iter_ == on_numpy.n_iter_ == 3
    assert on_dask.n_features_in_ == 3


def test_weighted_dask_fit_equals_numpy_fit(client, data):
    weight = np.random.RandomState(0).randint(0, 3, size=len(data[0]))
    on_dask, on_numpy = _fit_both(data, "full", sample_weight=weight)
    for name in FITTED:
        assert_allclose(getattr(on_dask, name), getattr(on_numpy, name), rtol=1e-10,
                        err_msg=name)


def test_predictions_on_dask_input_are_lazy_and_equal(client, data):
    X, y, Xd, yd, _ = data
    on_dask, on_numpy = _fit_both(data, "full")
    mean, std = on_dask.predict(Xd, return_std=True)
    results = {
        "predict": (on_dask.predict(Xd), on_numpy.predict(X)),
        "predict_std": (std, on_numpy.predict(X, return_std=True)[1]),
        "predict_gates": (on_dask.predict_gates(Xd), on_numpy.predict_gates(X)),
        "score_samples": (on_dask.score_samples(Xd, yd), on_numpy.score_samples(X, y)),
        "log p(x)": (on_dask.score_samples(Xd), on_numpy.score_samples(X)),
    }
    for name, (lazy, expected) in results.items():
        assert isinstance(lazy, da.Array), name
        assert lazy.chunks[0] == Xd.chunks[0], name
        computed = lazy.compute()
        assert computed.dtype == expected.dtype and computed.shape == expected.shape
        assert_allclose(computed, expected, rtol=1e-10, atol=1e-12, err_msg=name)
    assert_allclose(on_dask.joint_log_likelihood(Xd, yd),
                    on_numpy.joint_log_likelihood(X, y), rtol=1e-12)


def test_initialisation_uses_a_bounded_row_sample(client, data):
    """max_iter=0: the start is the NumPy initialisation on the sampled rows."""
    X, y, Xd, yd, _ = data
    model = GaussianGatedMoERegressor(3, max_iter=0, init_sample_size=400, random_state=0)
    model.fit(Xd, yd)
    rng = np.random.RandomState(0)
    rows = np.sort(rng.choice(len(X), size=400, replace=False))
    # The same generator, after drawing the rows, then seeds k-means.
    reference = GaussianGatedMoERegressor(3, max_iter=0, random_state=rng).fit(X[rows], y[rows])
    for name in ["weights_", "means_", "covariances_", "coef_"]:
        assert_allclose(getattr(model, name), getattr(reference, name), rtol=1e-10)


def test_partial_fit_on_dask_equals_numpy(client, data):
    X, y, Xd, yd, params = data
    start = dict_start(params, "full")
    on_dask = GaussianGatedMoERegressor(3, init_params=start)
    on_numpy = GaussianGatedMoERegressor(3, init_params=start)
    for rows in (slice(0, 1500), slice(1500, 3000)):
        on_dask.partial_fit(Xd[rows], yd[rows])
        on_numpy.partial_fit(X[rows], y[rows])
    for name in FITTED:
        assert_allclose(getattr(on_dask, name), getattr(on_numpy, name), rtol=1e-10,
                        err_msg=name)


def test_bad_dask_input_is_a_clear_error(client, data):
    X, y, Xd, yd, _ = data
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        GaussianGatedMoERegressor(3).fit(da.from_array(bad, chunks=1000), yd)
    with pytest.raises(ValueError, match="2-D"):
        GaussianGatedMoERegressor(3).fit(Xd[:, 0], yd)
    fitted = GaussianGatedMoERegressor(3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(Xd[:, :2])
