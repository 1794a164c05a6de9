"""Numba math shared by the kernels: Hermite polynomials, stable sigmoid and softmax.

Normalised probabilists' Hermite polynomials ``h_i = He_i / sqrt(i!)``.

One implementation of the three-term recurrence

    ``h_{i+1}(t) = (t h_i(t) - sqrt(i) h_{i-1}(t)) / sqrt(i + 1)``,

used by :func:`skmoe.datasets.make_latent_cluster_regression` and by
:class:`skmoe.SGDMoERegressor` (its SGD kernels and its second-layer
features).  The ``h_i`` are orthonormal under the standard normal
distribution and ``h_i' = sqrt(i) h_{i-1}``.

:func:`stable_sigmoid`, :func:`logsumexp` and :func:`softmax_inplace` are the
one overflow-safe sigmoid / log-sum-exp / softmax of the compiled kernels
(the MLP losses, the SGD-MoE router).  They are inlined into their
callers (``inline="always"``), so they cost no call in the hot loops.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _next(t, i, cur, prev):
    """``h_{i+1}(t)`` from ``cur = h_i(t)`` and ``prev = h_{i-1}(t)``."""
    return (t * cur - np.sqrt(i) * prev) / np.sqrt(i + 1.0)


@njit(cache=True, nogil=True)
def hermite_and_derivative(t, k):
    """``(h_k(t), h_k'(t))`` for a scalar ``t``."""
    if k == 0:
        return 1.0, 0.0
    prev = 1.0
    cur = t
    for i in range(1, k):
        nxt = _next(t, i, cur, prev)
        prev = cur
        cur = nxt
    return cur, np.sqrt(k) * prev


@njit(cache=True, nogil=True)
def _hermite_basis_flat(z, degree, out):
    """``out[n, i] = h_i(z[n])`` for ``i = 0 .. degree``; ``z`` is 1-D."""
    for n in range(z.shape[0]):
        t = z[n]
        out[n, 0] = 1.0
        if degree >= 1:
            out[n, 1] = t
        for i in range(1, degree):
            out[n, i + 1] = _next(t, i, out[n, i], out[n, i - 1])


def hermite_basis(z, degree):
    """Normalised Hermite polynomials ``h_0 .. h_degree`` at every point of ``z``.

    Parameters
    ----------
    z : array-like
        Points (any shape); computed in float64.
    degree : int
        Highest degree.

    Returns
    -------
    h : ndarray of shape z.shape + (degree + 1,)
        ``h[..., i] = h_i(z)``.
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty((z.size, degree + 1))
    _hermite_basis_flat(np.ascontiguousarray(z).reshape(-1), int(degree), out)
    return out.reshape(z.shape + (degree + 1,))


@njit(cache=True, nogil=True, inline="always")
def stable_sigmoid(z):
    """``1 / (1 + exp(-z))`` without overflow (``exp(z) / (1 + exp(z))`` for ``z < 0``)."""
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True, nogil=True, inline="always")
def logsumexp(z):
    """``log(sum(exp(z)))`` of a non-empty 1-D array, shifted by its maximum."""
    zmax = z[0]
    for i in range(1, z.shape[0]):
        zmax = max(zmax, z[i])
    total = 0.0
    for i in range(z.shape[0]):
        total += np.exp(z[i] - zmax)
    return zmax + np.log(total)


@njit(cache=True, nogil=True, inline="always")
def softmax_inplace(z):
    """Replace the non-empty 1-D array ``z`` by ``softmax(z)``, shifted by its maximum."""
    zmax = z[0]
    for i in range(1, z.shape[0]):
        zmax = max(zmax, z[i])
    total = 0.0
    for i in range(z.shape[0]):
        z[i] = np.exp(z[i] - zmax)
        total += z[i]
    for i in range(z.shape[0]):
        z[i] /= total
