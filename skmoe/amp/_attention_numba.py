"""Numba kernels for the posterior of the two- and three-layer tied-attention channel.

For ``L = 2`` tokens and two layers, ``y = softmax(u u^T)`` with
``u = A(z_1) z_2`` and ``A(z) = softmax_row(z z^T) + c I``.  Given ``y``,
``u`` is known up to sign, so the posterior over ``Z = [z_1, z_2]`` is a
density over the free ``z_1`` in R^2 (and the sign), with ``z_2 = A(z_1)^{-1}
(+-u)`` and Jacobian ``1/|det A(z_1)|``.  The kernels integrate it on a
uniform tensor grid over ``z_1`` (both sign branches), with log-sum-exp
weights, and return the posterior mean, the posterior second moment (from
the same weighted nodes, so the covariance is analytic in the quadrature
sense: no finite differences) and ``log`` of the unnormalised integral.

For three layers, ``u = A(A(z_1) z_2) A(z_1) z_3`` leaves ``(z_1, z_2)`` in
R^4 free, with ``z_3 = M^{-1} (+-u)``, ``M = A(A(z_1) z_2) A(z_1)``, and
Jacobian ``1/|det M|``; the integral over ``(z_1, z_2)`` is importance
sampled from their Gaussian prior marginal at fixed quasi-Monte Carlo
points.  In both kernels every node carries the two sign branches at once:
the attention matrices and the part of the exponent even in the branch are
computed once.

Samples are independent, so blocks of samples can run on any number of
threads with bitwise-identical results (see :mod:`._threading`).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _attention_matrix(x0, x1, c):
    """``A(x) = softmax_row(x x^T) + c I`` for ``x`` in R^2, as ``(A00, A01, A10, A11)``.

    Row ``i`` of ``softmax(x x^T)`` is ``(sigmoid(x_i^2 - x_i x_j), ...)``:
    one exponential per row, without overflow for any finite ``x``.
    """
    e0 = np.exp(-abs(x0 * x0 - x0 * x1))
    e1 = np.exp(-abs(x1 * x1 - x0 * x1))
    # stable sigmoid of t = x_i^2 - x_i x_j: 1/(1+e) if t >= 0, else e/(1+e).
    s00 = 1.0 / (1.0 + e0) if x0 * x0 >= x0 * x1 else e0 / (1.0 + e0)
    s11 = 1.0 / (1.0 + e1) if x1 * x1 >= x0 * x1 else e1 / (1.0 + e1)
    return s00 + c, 1.0 - s00, 1.0 - s11, s11 + c


@njit(cache=True, nogil=True)
def _attention2_one(u0, u1, om, Vinv, grid, c, sig1, work, mean, second):
    """Posterior of one sample; returns the log normaliser (without grid step).

    ``om`` is the flattened (token, layer) prior mean: indices 0, 2 are
    ``z_1`` (tokens 0, 1) and 1, 3 are ``z_2``.  Each grid node of ``z_1``
    carries both sign branches ``z_2 = +-A(z_1)^{-1} u``: ``A(z_1)``, its
    determinant and the even part of the Gaussian exponent are computed
    once for the two.  ``work`` (n_grid**2, 6) holds, per node, the two
    branch log-weights, ``z_1`` and ``A(z_1)^{-1} u``.
    """
    ng = grid.shape[0]
    v00 = Vinv[0, 0]
    v01 = Vinv[0, 1]
    v11 = Vinv[1, 1]
    # Parts of the exponent that do not depend on the node.
    om_sq = om[1] * om[1] + om[3] * om[3]
    k = 0
    mx = -np.inf
    for i in range(ng):
        x0 = om[0] + sig1 * grid[i]
        e00 = x0 - om[0]
        for j in range(ng):
            x1 = om[2] + sig1 * grid[j]
            e10 = x1 - om[2]
            A00, A01, A10, A11 = _attention_matrix(x0, x1, c)
            det = A00 * A11 - A01 * A10
            adet = abs(det)
            work[k, 2] = x0
            work[k, 3] = x1
            if not adet > 1e-300:
                work[k, 0] = -np.inf
                work[k, 1] = -np.inf
                work[k, 4] = 0.0
                work[k, 5] = 0.0
                k += 1
                continue
            w0 = (A11 * u0 - A01 * u1) / det
            w1 = (-A10 * u0 + A00 * u1) / det
            # Exponent at z_2 = s w: common + s * cross.
            common = (-0.5 * (v00 * (e00 * e00 + e10 * e10)
                              - 2.0 * v01 * (e00 * om[1] + e10 * om[3])
                              + v11 * (w0 * w0 + w1 * w1 + om_sq))
                      - np.log(adet))
            cross = v11 * (w0 * om[1] + w1 * om[3]) - v01 * (e00 * w0 + e10 * w1)
            lp = common + cross
            lm = common - cross
            work[k, 0] = lp
            work[k, 1] = lm
            work[k, 4] = w0
            work[k, 5] = w1
            if lp > mx:
                mx = lp
            if lm > mx:
                mx = lm
            k += 1
    # Accumulate with the branch sum (even in z_2) and difference (odd in z_2).
    tot = 0.0
    s_mean = np.zeros(4)  # order (z1_0, z1_1, z2_0, z2_1)
    s_second = np.zeros((4, 4))
    for m in range(k):
        wp = np.exp(work[m, 0] - mx)
        wm = np.exp(work[m, 1] - mx)
        ws = wp + wm
        wd = wp - wm
        tot += ws
        z = work[m, 2:6]
        for a in range(2):
            s_mean[a] += ws * z[a]
            for b in range(a, 2):
                s_second[a, b] += ws * z[a] * z[b]
            for b in range(2, 4):
                s_second[a, b] += wd * z[a] * z[b]
        for a in range(2, 4):
            s_mean[a] += wd * z[a]
            for b in range(a, 4):
                s_second[a, b] += ws * z[a] * z[b]
    # Back to the flattened (token, layer) order: (z1_0, z2_0, z1_1, z2_1).
    order = (0, 2, 1, 3)
    for a in range(4):
        mean[order[a]] = s_mean[a] / tot
        for b in range(a, 4):
            val = s_second[a, b] / tot
            second[order[a], order[b]] = val
            second[order[b], order[a]] = val
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
    work = np.empty((ng * ng, 6))
    for i in range(block_start * block, min(n, block_stop * block)):
        logZ[i] = _attention2_one(u[i, 0], u[i, 1], omega[i], Vinv, grid, c, sig1, work,
                                  mean[i], second[i])


# --------------------------------------------------------------------------
# Three layers: quasi-Monte Carlo over the free (z_1, z_2)
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _attention3_one(u0, u1, om, offsets, cond_offsets, inv_s2, c, work, mean, second):
    """Posterior of one three-layer sample; returns ``log mean_i w_i`` (both branches).

    ``om`` is the flattened (token, layer) prior mean (index ``3 l + k``).
    Point ``i`` puts ``(z_1, z_2)`` of token ``l`` at ``om + offsets[i]``
    (a draw of their prior marginal) and gives ``z_3`` of token ``l`` the
    conditional prior mean ``om[3 l + 2] + cond_offsets[i, l]``.  The last
    layer is then ``z_3 = +-M^{-1} u`` with ``M = A(A(z_1) z_2) A(z_1)``, and
    the log-weight is the conditional Gaussian log-density of ``z_3`` (up to
    its normaliser) minus ``log |det M|``.  ``work`` (n_points, 8) holds, per
    point, the two branch log-weights, ``(z_1, z_2)`` and ``M^{-1} u``.
    """
    n_points = offsets.shape[0]
    mx = -np.inf
    for i in range(n_points):
        a0 = om[0] + offsets[i, 0]  # z_1, token 0
        b0 = om[1] + offsets[i, 1]  # z_2, token 0
        a1 = om[3] + offsets[i, 2]  # z_1, token 1
        b1 = om[4] + offsets[i, 3]  # z_2, token 1
        P00, P01, P10, P11 = _attention_matrix(a0, a1, c)
        v0 = P00 * b0 + P01 * b1  # u_2 = A(z_1) z_2
        v1 = P10 * b0 + P11 * b1
        Q00, Q01, Q10, Q11 = _attention_matrix(v0, v1, c)
        M00 = Q00 * P00 + Q01 * P10
        M01 = Q00 * P01 + Q01 * P11
        M10 = Q10 * P00 + Q11 * P10
        M11 = Q10 * P01 + Q11 * P11
        det = M00 * M11 - M01 * M10
        adet = abs(det)
        work[i, 2] = a0
        work[i, 3] = b0
        work[i, 4] = a1
        work[i, 5] = b1
        if not adet > 1e-300:
            # A singular M maps no finite z_3 to u: the point has no weight.
            work[i, 0] = -np.inf
            work[i, 1] = -np.inf
            work[i, 6] = 0.0
            work[i, 7] = 0.0
            continue
        w0 = (M11 * u0 - M01 * u1) / det
        w1 = (-M10 * u0 + M00 * u1) / det
        m0 = om[2] + cond_offsets[i, 0]
        m1 = om[5] + cond_offsets[i, 1]
        # -0.5 |+-w - m|^2 / s2 = common -+ cross: the two branches at once.
        common = -0.5 * inv_s2 * (w0 * w0 + w1 * w1 + m0 * m0 + m1 * m1) - np.log(adet)
        cross = inv_s2 * (w0 * m0 + w1 * m1)
        lp = common + cross
        lm = common - cross
        work[i, 0] = lp
        work[i, 1] = lm
        work[i, 6] = w0
        work[i, 7] = w1
        if lp > mx:
            mx = lp
        if lm > mx:
            mx = lm
    for a in range(6):
        mean[a] = 0.0
        for b in range(6):
            second[a, b] = 0.0
    if not mx > -np.inf:
        return -np.inf
    # Accumulate with the branch sum (even in z_3) and difference (odd in z_3).
    tot = 0.0
    for i in range(n_points):
        wp = np.exp(work[i, 0] - mx)
        wm = np.exp(work[i, 1] - mx)
        ws = wp + wm
        wd = wp - wm
        tot += ws
        z = work[i, 2:8]  # (z1_0, z2_0, z1_1, z2_1, z3_0, z3_1) for the + branch
        for a in range(4):
            mean[a] += ws * z[a]
            for b in range(a, 4):
                second[a, b] += ws * z[a] * z[b]
            for b in range(4, 6):
                second[a, b] += wd * z[a] * z[b]
        for a in range(4, 6):
            mean[a] += wd * z[a]
            for b in range(a, 6):
                second[a, b] += ws * z[a] * z[b]
    for a in range(6):
        mean[a] /= tot
        for b in range(a, 6):
            second[a, b] /= tot
            second[b, a] = second[a, b]
    return mx + np.log(tot / n_points)


@njit(cache=True, nogil=True)
def attention3_posterior_blocks(block_start, block_stop, block, u, omega, offsets,
                                cond_offsets, inv_s2, c, mean, second, log_mean_weight):
    """Three-layer posterior moments for samples ``block_start*block : block_stop*block``.

    Parameters
    ----------
    block_start, block_stop, block : int
        Block range and block size (samples per block).
    u : ndarray of shape (n, 2)
        One solution of ``y = softmax(u u^T)``.
    omega : ndarray of shape (n, 6)
        Prior means, flattened (token, layer).
    offsets : ndarray of shape (n_points, 4)
        Quasi-Monte Carlo draws of ``(z_1, z_2) - omega`` of both tokens
        (columns: token 0 layers 1, 2; token 1 layers 1, 2), shared by every
        sample.
    cond_offsets : ndarray of shape (n_points, 2)
        Conditional prior mean of ``z_3 - omega`` of each token at those draws.
    inv_s2 : float
        Inverse conditional prior variance of ``z_3``.
    c : float
        Skip strength.
    mean, second, log_mean_weight : ndarray
        Outputs of shapes (n, 6), (n, 6, 6) and (n,), in the flattened
        (token, layer) order; ``second`` is the raw second moment.
    """
    n = u.shape[0]
    work = np.empty((offsets.shape[0], 8))
    # Point order: (z1_0, z2_0, z1_1, z2_1, z3_0, z3_1) -> flattened index 3 l + k.
    order = np.array([0, 1, 3, 4, 2, 5])
    m = np.empty(6)
    s = np.empty((6, 6))
    for i in range(block_start * block, min(n, block_stop * block)):
        log_mean_weight[i] = _attention3_one(u[i, 0], u[i, 1], omega[i], offsets,
                                             cond_offsets, inv_s2, c, work, m, s)
        for a in range(6):
            mean[i, order[a]] = m[a]
            for b in range(6):
                second[i, order[a], order[b]] = s[a, b]

