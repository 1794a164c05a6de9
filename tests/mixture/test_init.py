"""Bounded-memory initialisation of GaussianGatedMoERegressor (issues 14 and 16)."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans

from skmoe import GaussianGatedMoERegressor
from skmoe.datasets import make_gaussian_gated_moe
from skmoe.mixture._base import initial_statistics
from skmoe.mixture._init_numba import label_moments, soft_moments
from skmoe.mixture._params import _moments_from_responsibilities, m_step


@pytest.fixture(scope="module")
def data():
    X, y = make_gaussian_gated_moe(5000, 3, n_components=4, random_state=0)
    return X, y[:, None]


def _naive_label_moments(Z, centers, labels, weight):
    K, dim = centers.shape
    s0, s1, s2 = np.zeros(K), np.zeros((K, dim)), np.zeros((K, dim, dim))
    for k in range(K):
        U = Z[labels == k] - centers[k]
        w = weight[labels == k]
        s0[k], s1[k], s2[k] = w.sum(), w @ U, (w * U.T) @ U
    return s0, s1, s2


@pytest.mark.parametrize("given_labels", [True, False])
def test_label_moments_match_numpy(data, given_labels):
    X, Y = data
    Z = np.hstack([X, Y])
    rng = np.random.RandomState(0)
    centers = Z[rng.choice(len(Z), 4, replace=False)] + 0.1
    weight = rng.uniform(0, 2, len(Z))
    weight[::7] = 0.0
    nearest = np.argmin(((Z[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    labels = rng.randint(0, 4, len(Z)) if given_labels else nearest
    got = label_moments(X, Y, centers, labels if given_labels else None, weight)
    for a, b in zip(got, _naive_label_moments(Z, centers, labels, weight)):
        assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_soft_moments_match_numpy(data):
    X, Y = data
    rng = np.random.RandomState(1)
    resp = rng.dirichlet(np.ones(4), size=len(X))
    weight = rng.uniform(0, 2, len(X))
    got = soft_moments(X, Y, resp, weight)
    expected = _moments_from_responsibilities(np.hstack([X, Y]), resp * weight[:, None])
    for a, b in zip(got, expected):
        assert_allclose(a, b, rtol=1e-10, atol=1e-9)


def test_kmeans_on_a_sample_labels_every_row_by_nearest_centre(data):
    """The sampled start: k-means on the sampled rows, moments of all rows."""
    X, Y = data
    weight = np.random.RandomState(2).uniform(0.5, 1.5, len(X))
    statistics = initial_statistics(
        X, Y, 4, "kmeans", np.random.RandomState(0), weight, init_sample_size=800
    )
    rng = np.random.RandomState(0)
    rows = np.sort(rng.choice(len(X), 800, replace=False))
    Z = np.hstack([X, Y])
    kmeans = KMeans(4, n_init=1, random_state=rng).fit(Z[rows], sample_weight=weight[rows])
    labels = kmeans.predict(Z)
    centers = kmeans.cluster_centers_
    expected = (*_naive_label_moments(Z, centers, labels, weight), centers)
    for a, b in zip(statistics, expected):
        assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    # And the estimator starts there (max_iter=0 returns the start).
    model = GaussianGatedMoERegressor(4, max_iter=0, init_sample_size=800, random_state=0)
    model.fit(X, Y[:, 0], sample_weight=weight)
    assert_allclose(model.means_, m_step(*expected, 3, "full", 1e-6)["means"], rtol=1e-9)


def test_small_data_initialisation_ignores_the_sample_size(data):
    """n <= init_sample_size: the same start as without a sample."""
    X, Y = data
    for init_params in ["kmeans", "k-means++"]:
        a = initial_statistics(X, Y, 4, init_params, np.random.RandomState(0), None, 5000)
        b = initial_statistics(X, Y, 4, init_params, np.random.RandomState(0), None, None)
        for u, v in zip(a, b):
            assert_allclose(u, v, rtol=0, atol=0)


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data", "k-means++"])
def test_initialisation_allocates_no_data_sized_temporaries(init_params):
    """Peak NumPy allocation of the initialisation is O(n), not O(n (K + d)).

    The one-hot responsibilities alone would be n K doubles, and [X, y] n
    (d + 1); the bound is 2 n doubles (the row sample's permutation).
    """
    n, d, K = 100_000, 4, 6
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, 1))
    initial_statistics(X[:1000], Y[:1000], K, init_params, np.random.RandomState(0),
                       None, 500)  # compile and warm up outside the measurement
    tracemalloc.start()
    try:
        initial_statistics(X, Y, K, init_params, np.random.RandomState(0), None, 2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * n * 8
