"""Numba kernels for the posterior of the two-layer tied-attention channel.

For ``L = 2`` tokens and two layers, ``y = softmax(u u^T)`` with
``u = A(z_1) z_2`` and ``A(z) = softmax_row(z z^T) + c I``.  Given ``y``,
``u`` is known up to sign, so the posterior over ``Z = [z_1, z_2]`` is a
density over the free ``z_1`` in R^2 (and the sign), with ``z_2 = A(z_1)^{-1}
(+-u)`` and Jacobian ``1/|det A(z_1)|``.  The kernels integrate it on a
uniform tensor grid over ``z_1`` (both sign branches), with log-sum-exp
weights, and return the posterior mean, the posterior second moment (from
the same weighted nodes, so the covariance is analytic in the quadrature
sense: no finite differences) and ``log`` of the unnormalised integral.

Samples are independent, so blocks of samples can run on any number of
threads with bitwise-identical results (see :mod:`._threading`).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _attention2_one(u0, u1, om, Vinv, grid, c, sig1, lw, zs, mean, second):
    """Posterior of one sample; returns the log normaliser (without grid step).

    ``om`` is the flattened (token, layer) prior mean: indices 0, 2 are
    ``z_1`` (tokens 0, 1) and 1, 3 are ``z_2``.
    """
    ng = grid.shape[0]
    v00 = Vinv[0, 0]
    v01 = Vinv[0, 1]
    v11 = Vinv[1, 1]
    k = 0
    mx = -np.inf
    for s in range(2):
        sg = 1.0 if s == 0 else -1.0
        a0 = sg * u0
        a1 = sg * u1
        for i in range(ng):
            x0 = om[0] + sig1 * grid[i]
            for j in range(ng):
                x1 = om[2] + sig1 * grid[j]
                # Row softmax of z1 z1^T (2 x 2).
                d0 = x0 * x1 - x0 * x0
                d1 = x0 * x1 - x1 * x1
                s00 = 1.0 / (1.0 + np.exp(d0))
                s11 = 1.0 / (1.0 + np.exp(d1))
                A00 = s00 + c
                A01 = 1.0 - s00
                A10 = 1.0 - s11
                A11 = s11 + c
                det = A00 * A11 - A01 * A10
                adet = abs(det)
                if adet < 1e-300:
                    lw[k] = -np.inf
                    zs[k, 0] = x0
                    zs[k, 1] = 0.0
                    zs[k, 2] = x1
                    zs[k, 3] = 0.0
                    k += 1
                    continue
                y0 = (A11 * a0 - A01 * a1) / det
                y1 = (-A10 * a0 + A00 * a1) / det
                e00 = x0 - om[0]
                e01 = y0 - om[1]
                e10 = x1 - om[2]
                e11 = y1 - om[3]
                q = (v00 * (e00 * e00 + e10 * e10) + 2.0 * v01 * (e00 * e01 + e10 * e11)
                     + v11 * (e01 * e01 + e11 * e11))
                val = -0.5 * q - np.log(adet)
                lw[k] = val
                zs[k, 0] = x0
                zs[k, 1] = y0
                zs[k, 2] = x1
                zs[k, 3] = y1
                if val > mx:
                    mx = val
                k += 1
    tot = 0.0
    for a in range(4):
        mean[a] = 0.0
        for b in range(4):
            second[a, b] = 0.0
    for m in range(k):
        w = np.exp(lw[m] - mx)
        tot += w
        for a in range(4):
            wa = w * zs[m, a]
            mean[a] += wa
            for b in range(a, 4):
                second[a, b] += wa * zs[m, b]
    for a in range(4):
        mean[a] /= tot
        for b in range(a, 4):
            second[a, b] /= tot
            second[b, a] = second[a, b]
    return mx + np.log(tot)


@njit(cache=True, nogil=True)
def attention2_posterior_blocks(block_start, block_stop, block, u, omega, Vinv, grid, c,
                                sig1, mean, second, logZ):
    """Posterior moments for samples ``block_start*block : block_stop*block``.

    Parameters
    ----------
    block_start, block_stop, block : int
        Block range and block size (samples per block).
    u : ndarray of shape (n, 2)
        One solution of ``y = softmax(u u^T)``.
    omega : ndarray of shape (n, 4)
        Prior means, flattened (token, layer).
    Vinv : ndarray of shape (2, 2)
        Inverse prior covariance of a token row.
    grid : ndarray of shape (n_grid,)
        Standardised grid for each coordinate of ``z_1``.
    c : float
        Skip strength.
    sig1 : float
        Prior standard deviation of ``z_1`` (``sqrt(V[0, 0])``).
    mean, second, logZ : ndarray
        Outputs of shapes (n, 4), (n, 4, 4), (n,).
    """
    n = u.shape[0]
    ng = grid.shape[0]
    K = 2 * ng * ng
    lw = np.empty(K)
    zs = np.empty((K, 4))
    for i in range(block_start * block, min(n, block_stop * block)):
        logZ[i] = _attention2_one(u[i, 0], u[i, 1], omega[i], Vinv, grid, c, sig1, lw, zs,
                                  mean[i], second[i])
