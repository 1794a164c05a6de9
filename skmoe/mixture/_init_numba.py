"""Numba kernels of the initialisation: moments of ``[X, Y]`` from hard or soft labels.

The initial M-step needs, per component ``k``, the (weighted) sums
``s0 = sum_n r_nk``, ``s1 = sum_n r_nk u_nk`` and ``s2 = sum_n r_nk u_nk
u_nk^T`` with ``u_nk = z_n - c_k`` and ``z_n = (x_n, y_n)``.  These kernels
accumulate them in one pass over ``X`` and ``Y`` read row by row, so no
``[X, Y]`` copy, no ``(n_samples, n_components)`` one-hot matrix and no
``(n_samples, dim)`` temporary is ever formed: extra memory is
``O(n_blocks * n_components * dim^2)``.

As in :mod:`skmoe.mixture._passes_numba`, rows are split into blocks that
depend only on ``n_samples`` and the per-block sums are added in block order,
so the results do not depend on the number of threads.
"""

import numpy as np
from numba import njit

from ..utils._threading import block_partition, run_blocks


@njit(cache=True)
def _load_row(X, Y, n, z):
    n_features = X.shape[1]
    for a in range(n_features):
        z[a] = X[n, a]
    for a in range(Y.shape[1]):
        z[n_features + a] = Y[n, a]


@njit(cache=True)
def _nearest_center(z, centers):
    best = 0
    best_distance = np.inf
    for k in range(centers.shape[0]):
        distance = 0.0
        for a in range(z.shape[0]):
            diff = z[a] - centers[k, a]
            distance += diff * diff
        if distance < best_distance:
            best_distance = distance
            best = k
    return best


@njit(cache=True)
def _add_row(z, center, w, s1, s2, u):
    """``s1 += w u``, upper triangle of ``s2 += w u u^T`` with ``u = z - center``."""
    dim = z.shape[0]
    for a in range(dim):
        u[a] = z[a] - center[a]
    for a in range(dim):
        wu = w * u[a]
        s1[a] += wu
        for b in range(a, dim):
            s2[a, b] += wu * u[b]


@njit(cache=True, nogil=True)
def _label_moments_blocks(
    block_start, block_stop, block_size, X, Y, centers, labels, sample_weight,
    block_s0, block_s1, block_s2,
):
    """Moments of the rows of each label about ``centers[label]``, per block.

    ``labels`` empty: every row takes the label of its nearest centre
    (squared Euclidean distance on ``[x, y]``, first one on ties, as
    k-means assigns).  ``sample_weight`` empty: weight one.
    """
    n_samples = X.shape[0]
    dim = centers.shape[1]
    z = np.empty(dim)
    u = np.empty(dim)
    given = labels.shape[0] > 0
    weighted = sample_weight.shape[0] > 0
    for b in range(block_start, block_stop):
        for n in range(b * block_size, min(n_samples, (b + 1) * block_size)):
            w = sample_weight[n] if weighted else 1.0
            if w == 0.0:
                continue
            _load_row(X, Y, n, z)
            k = labels[n] if given else _nearest_center(z, centers)
            block_s0[b, k] += w
            _add_row(z, centers[k], w, block_s1[b, k], block_s2[b, k], u)


@njit(cache=True, nogil=True)
def _soft_moments_blocks(
    block_start, block_stop, block_size, X, Y, centers, resp, sample_weight,
    block_s0, block_s1, block_s2,
):
    """As :func:`_label_moments_blocks` for soft responsibilities ``resp[n, k]``."""
    n_samples = X.shape[0]
    n_components, dim = centers.shape
    z = np.empty(dim)
    u = np.empty(dim)
    weighted = sample_weight.shape[0] > 0
    for b in range(block_start, block_stop):
        for n in range(b * block_size, min(n_samples, (b + 1) * block_size)):
            w = sample_weight[n] if weighted else 1.0
            if w == 0.0:
                continue
            _load_row(X, Y, n, z)
            for k in range(n_components):
                r = w * resp[n, k]
                block_s0[b, k] += r
                _add_row(z, centers[k], r, block_s1[b, k], block_s2[b, k], u)


def _run(kernel, X, Y, centers, assignment, sample_weight):
    n_components, dim = centers.shape
    n_blocks, block_size = block_partition(X.shape[0])
    block_s0 = np.zeros((n_blocks, n_components))
    block_s1 = np.zeros((n_blocks, n_components, dim))
    block_s2 = np.zeros((n_blocks, n_components, dim, dim))
    weights = np.empty(0) if sample_weight is None else np.ascontiguousarray(
        sample_weight, dtype=np.float64
    )
    run_blocks(
        kernel, n_blocks, block_size, X, Y, np.ascontiguousarray(centers, dtype=np.float64),
        assignment, weights, block_s0, block_s1, block_s2,
    )
    s2 = block_s2.sum(axis=0)
    s2 = np.triu(s2) + np.swapaxes(np.triu(s2, 1), 1, 2)
    return block_s0.sum(axis=0), block_s1.sum(axis=0), s2


def label_moments(X, Y, centers, labels=None, sample_weight=None):
    """Moments of ``[X, Y]`` for hard labels, about ``centers[label]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    Y : ndarray of shape (n_samples, n_outputs), same dtype
    centers : ndarray of shape (n_components, n_features + n_outputs)
        The points the moments are taken about (e.g. the k-means centres).
    labels : ndarray of shape (n_samples,) of int, default=None
        Component of each row; None assigns each row to its nearest centre.
    sample_weight : ndarray of shape (n_samples,), default=None

    Returns
    -------
    s0 : ndarray of shape (n_components,)
    s1 : ndarray of shape (n_components, dim)
    s2 : ndarray of shape (n_components, dim, dim)
    """
    labels = np.empty(0, dtype=np.int64) if labels is None else np.ascontiguousarray(
        labels, dtype=np.int64
    )
    return _run(_label_moments_blocks, X, Y, centers, labels, sample_weight)


def soft_moments(X, Y, resp, sample_weight=None):
    """Moments of ``[X, Y]`` for soft responsibilities, about the weighted means.

    Two passes: the weighted sums give the means (moments about 0), then the
    second moments are taken about them, which keeps ``E[uu^T]`` free of
    cancellation.

    Parameters
    ----------
    X, Y : ndarray
        As in :func:`label_moments`.
    resp : ndarray of shape (n_samples, n_components)
    sample_weight : ndarray of shape (n_samples,), default=None

    Returns
    -------
    s0, s1, s2, centers
        As taken by :func:`skmoe.mixture._params.m_step`.
    """
    resp = np.ascontiguousarray(resp, dtype=np.float64)
    dim = X.shape[1] + Y.shape[1]
    zero = np.zeros((resp.shape[1], dim))
    s0, s1, _ = _run(_soft_moments_blocks, X, Y, zero, resp, sample_weight)
    centers = s1 / (s0 + 10 * np.finfo(np.float64).eps)[:, None]
    s0, s1, s2 = _run(_soft_moments_blocks, X, Y, centers, resp, sample_weight)
    return s0, s1, s2, centers
