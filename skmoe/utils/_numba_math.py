"""Normalised probabilists' Hermite polynomials ``h_i = He_i / sqrt(i!)``.

One implementation of the three-term recurrence

    ``h_{i+1}(t) = (t h_i(t) - sqrt(i) h_{i-1}(t)) / sqrt(i + 1)``,

used by :func:`skmoe.datasets.make_latent_cluster_regression` and by
:class:`skmoe.SGDMoERegressor` (its SGD kernels and its second-layer
features).  The ``h_i`` are orthonormal under the standard normal
distribution and ``h_i' = sqrt(i) h_{i-1}``.
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
