"""Kernels for the diagonal Fisher information of MLPs and linear models.

Notation (one sample)
---------------------
The network is ``z_{l+1} = a_l W_l + b_l`` and ``a_l = phi(z_l)`` for the
hidden layers ``l = 1..L-1``; ``a_0 = x`` and the output ``h = z_L`` is the
natural parameter of the output family (``C`` outputs).  A linear model is the
case ``L = 1``.

For a unit ``k`` of ``z_m`` let ``b = dh/dz_m[k]`` (a ``C``-vector, the
Jacobian column) and ``w = d^2 h / dz_m[k]^2`` (the Hessian diagonal of every
output).  Every parameter feeding ``z_m[k]`` is ``W_{m-1}[j, k]`` (for which
``dh/dtheta = a_j b`` and ``d^2h/dtheta^2 = a_j^2 w``) or the bias ``b[k]``
(``a_j = 1``).  Every quantity of the estimator is therefore ``a_j^p`` times a
*unit* statistic, and the sum over samples of a parameter statistic is a
matrix product ``(A^{op})^T U`` (BLAS); no per-sample gradient is ever
stored.  The unit statistics (quadratic and quartic forms of ``b`` and ``w``
in the output family's moments, contractions with the sampled residuals) are
computed by the numba kernels of this module.

Output families (``family`` codes) and their effective residual
``r = t(y) - E[t]`` (so that the score is ``r^T dh/dtheta``):

* ``GAUSSIAN`` ``N(h, sigma^2 I)``: ``r = (y - h) / sigma^2``, ``I = I/sigma^2``;
* ``INDEPENDENT`` (Bernoulli or Poisson outputs, independent): ``r = y - mean``,
  ``I = diag(var)``, fourth central moments ``mu4``;
* ``SOFTMAX`` (categorical): ``r = e_c - p``, ``I = diag(p) - p p^T``.
"""

import math

import numpy as np
from numba import njit

from ..utils._numba_math import stable_sigmoid
from ..utils._threading import run_blocks

GAUSSIAN = 0
INDEPENDENT = 1
SOFTMAX = 2

FAMILY_CODES = {"gaussian": GAUSSIAN, "bernoulli": INDEPENDENT, "poisson": INDEPENDENT,
                "softmax": SOFTMAX}


# --------------------------------------------------------------------------
# numba kernels: unit statistics
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _quadratic_forms(family, Bi, p, var, mu4, inv_sigma2, G, V, norm, work):
    """Per unit ``k`` of one row: ``G = b^T I b``, ``V = E[(r^T b)^4] - G^2`` and ``|b|^2``.

    ``Bi`` is the row's (C, K) block of columns ``b``; the loops run over the
    units innermost (contiguous, vectorised).  The softmax moments are
    centred at ``bbar = p^T b`` (in ``work``), so neither cancels.
    """
    C, K = Bi.shape
    norm[:] = 0.0
    for c in range(C):
        for k in range(K):
            norm[k] += Bi[c, k] * Bi[c, k]
    if family == GAUSSIAN:
        for k in range(K):
            G[k] = norm[k] * inv_sigma2
            V[k] = 2.0 * G[k] * G[k]
        return
    G[:] = 0.0
    V[:] = 0.0
    if family == INDEPENDENT:
        for c in range(C):
            excess = mu4[c] - 3.0 * var[c] * var[c]
            for k in range(K):
                b2 = Bi[c, k] * Bi[c, k]
                G[k] += var[c] * b2
                V[k] += b2 * b2 * excess
        for k in range(K):
            V[k] += 2.0 * G[k] * G[k]
        return
    work[:] = 0.0
    for c in range(C):
        for k in range(K):
            work[k] += p[c] * Bi[c, k]
    for c in range(C):
        for k in range(K):
            d = Bi[c, k] - work[k]
            d2 = d * d
            G[k] += p[c] * d2
            V[k] += p[c] * d2 * d2
    for k in range(K):
        v = V[k] - G[k] * G[k]
        V[k] = v if v > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _hessian_forms(family, Wi, p, var, inv_sigma2, V2, norm, work):
    """Per unit of one row: ``V2 = w^T I w`` and ``|w|^2`` (softmax: ``|w - mean(w)|^2``).

    Softmax: ``I 1 = 0``, so ``w^T I w`` only sees ``w - mean(w)``, and the
    centred norm gives the tighter bounds of :func:`eigen_constants`.
    """
    C, K = Wi.shape
    norm[:] = 0.0
    V2[:] = 0.0
    if family != SOFTMAX:
        for c in range(C):
            scale = inv_sigma2 if family == GAUSSIAN else var[c]
            for k in range(K):
                w2 = Wi[c, k] * Wi[c, k]
                norm[k] += w2
                V2[k] += scale * w2
        return
    # |w - mean(w)|^2 = sum w^2 - C mean(w)^2 and w^T I w = sum p (w - p.w)^2
    work[:] = 0.0
    for c in range(C):
        for k in range(K):
            work[k] += Wi[c, k]
    for c in range(C):
        for k in range(K):
            d = Wi[c, k] - work[k] / C
            norm[k] += d * d
    work[:] = 0.0
    for c in range(C):
        for k in range(K):
            work[k] += p[c] * Wi[c, k]
    for c in range(C):
        for k in range(K):
            d = Wi[c, k] - work[k]
            V2[k] += p[c] * d * d


@njit(cache=True, nogil=True, inline="always")
def _project(R, d, Mi, out):
    """``out[k] = R[d]^T Mi[:, k]``: one sampled residual against every unit."""
    out[:] = 0.0
    for c in range(Mi.shape[0]):
        r = R[d, c]
        for k in range(Mi.shape[1]):
            out[k] += r * Mi[c, k]


# Rows per block of unit_statistics: each row costs O(K C M), so small
# blocks already amortise the thread hand-off.
_UNIT_BLOCK_ROWS = 64

#: Column slots of the statistics weighted by ``a_j^2`` (``slot2``) and by
#: ``a_j^4`` (``slot4``), in the order of the ``slot`` arrays of
#: :func:`unit_statistics`.
NAMES2 = ("fisher", "score", "hessian")
NAMES4 = ("var_score", "evar_score", "lower_score", "upper_score", "var_hessian",
          "evar_hessian", "lower_hessian", "upper_hessian", "fisher_sq")

#: ``hess_mode`` of :func:`unit_statistics`: no Hessian term (``w = 0``),
#: all ``C`` output Hessians, or only that of the summed sampled residual.
HESSIAN_NONE = 0
HESSIAN_FULL = 1
HESSIAN_SAMPLED = 2


def unit_statistics(family, B, Hs, Hr, hess_mode, R, row_ptr, mean, var, mu4, inv_sigma2,
                    row_weight, copy_weight, bound_constants, slot2, slot4, U2, U4):
    """Weighted per-sample, per-unit statistics of one layer, over row blocks in parallel.

    Each row is written independently (no reduction), so the result does not
    depend on the number of threads.  Arguments are those of
    :func:`_unit_statistics_blocks` after its first three.
    """
    n_blocks = -(-B.shape[0] // _UNIT_BLOCK_ROWS)
    run_blocks(_unit_statistics_blocks, n_blocks, _UNIT_BLOCK_ROWS, family, B, Hs, Hr,
               hess_mode, R, row_ptr, mean, var, mu4, inv_sigma2, row_weight, copy_weight,
               bound_constants, slot2, slot4, U2, U4)


@njit(cache=True, nogil=True)
def _unit_statistics_blocks(block_start, block_stop, block_size, family, B, Hs, Hr, hess_mode,
                            R, row_ptr, mean, var, mu4, inv_sigma2, row_weight, copy_weight,
                            bound_constants, slot2, slot4, U2, U4):
    """Weighted unit statistics of one layer for the rows of blocks ``block_start:block_stop``.

    The statistics are written straight into the column blocks of the
    matrices that the caller multiplies by ``a_j^2`` and ``a_j^4`` (one
    product each), so no per-statistic array is ever formed.

    Parameters
    ----------
    block_start, block_stop : int
        Range of row blocks to process.
    block_size : int
        Rows per block.
    family : int
        ``GAUSSIAN``, ``INDEPENDENT`` or ``SOFTMAX``.
    B : ndarray of shape (n, C, K)
        Jacobian columns ``b = dh/dz[k]``.
    Hs : ndarray of shape (n, C, K)
        Output Hessian diagonals ``w = d^2h/dz[k]^2`` (``HESSIAN_FULL``).
    Hr : ndarray of shape (n, K)
        ``rbar^T w`` for the sum ``rbar`` of a row's sampled residuals
        (``HESSIAN_SAMPLED``).
    hess_mode : int
        ``HESSIAN_NONE``, ``HESSIAN_FULL`` or ``HESSIAN_SAMPLED``.
    R : ndarray of shape (n_draws_total, C)
        Sampled effective residuals; those of row ``i`` are
        ``R[row_ptr[i]:row_ptr[i + 1]]``.
    row_ptr : ndarray of shape (n + 1,), int64
    mean, var, mu4 : ndarray of shape (n, C)
        Output moments (``mean`` holds ``p`` for the softmax family).
    inv_sigma2 : float
        ``1 / sigma^2`` for the Gaussian family.
    row_weight, copy_weight : ndarray of shape (n,)
        The sample weight ``s`` of each row and the weight ``u = s / c`` of
        each of its ``c`` virtual copies (see
        :func:`skmoe.inspection._fisher_statistics.virtual_copies`).
        Statistics linear in the draws carry ``u``, their squares ``u^2``,
        and per-row variances ``s u``: for an integer weight, exactly the
        sums over ``s`` repeated rows.
    bound_constants : ndarray of shape (n, 4)
        Per row: the constants of the lower and upper bounds of ``V_1``
        (multiplying ``|b|^4``) and of ``V_2`` (multiplying ``|w|^2``).
    slot2 : ndarray of shape (3,), int64
        Column block of ``U2`` of ``(G, S1, S2)`` (names ``NAMES2``), -1 for
        one not computed.
    slot4 : ndarray of shape (9,), int64
        Column block of ``U4`` of each of ``NAMES4``, or -1.  The score
        variances (``slot4[0:4]``) come together, except that the lower bound
        may be -1 alone; likewise the Hessian variances (``slot4[4:8]``).
    U2, U4 : ndarray of shape (n, n2 * K) and (n, n4 * K)
        Written, weighted as above.  Unweighted: ``G = b^T I b``,
        ``S1 = sum_d (r_d^T b)^2``, ``S2 = sum_d (G - r_d^T w)``,
        ``E1 = sum_d ((r_d^T b)^2 - G)^2``, ``E2 = sum_d (r_d^T w)^2``,
        ``V1``/``V2`` the closed forms, bounds ``|b|^4 c`` and ``|w|^2 c``
        (softmax: ``|w - mean(w)|^2 c``), and ``G^2``.
    """
    n, C, K = B.shape
    # Per-unit work vectors of one row (the loops run over the units innermost).
    scratch = np.empty((11, K))
    G, V1, nb, work, g, s1, e1 = (scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
                                  scratch[5], scratch[6])
    s2, e2, v2, nh = scratch[7], scratch[8], scratch[9], scratch[10]
    with_score = slot2[1] >= 0
    with_hessian = slot2[2] >= 0
    for i in range(block_start * block_size, min(n, block_stop * block_size)):
        s = row_weight[i]
        u = copy_weight[i]
        su = s * u
        uu = u * u
        first, stop = row_ptr[i], row_ptr[i + 1]
        Bi = B[i]
        _quadratic_forms(family, Bi, mean[i], var[i], mu4[i], inv_sigma2, G, V1, nb, work)
        if slot2[0] >= 0:
            col = slot2[0] * K
            for k in range(K):
                U2[i, col + k] = s * G[k]
        if slot4[8] >= 0:
            col = slot4[8] * K
            for k in range(K):
                U4[i, col + k] = s * G[k] * G[k]
        if with_score:
            s1[:] = 0.0
            e1[:] = 0.0
            for d in range(first, stop):
                _project(R, d, Bi, g)
                for k in range(K):
                    g2 = g[k] * g[k]
                    s1[k] += g2
                    e1[k] += (g2 - G[k]) * (g2 - G[k])
            col = slot2[1] * K
            for k in range(K):
                U2[i, col + k] = u * s1[k]
            if slot4[0] >= 0:
                c0, c1, c3 = slot4[0] * K, slot4[1] * K, slot4[3] * K
                upper = bound_constants[i, 1]
                for k in range(K):
                    U4[i, c0 + k] = su * V1[k]
                    U4[i, c1 + k] = uu * e1[k]
                    U4[i, c3 + k] = su * nb[k] * nb[k] * upper
            # (the lower bound is left out where it is identically zero)
            if slot4[2] >= 0:
                c2 = slot4[2] * K
                lower = bound_constants[i, 0]
                for k in range(K):
                    U4[i, c2 + k] = su * nb[k] * nb[k] * lower
        if not with_hessian:
            continue
        n_draws = stop - first
        for k in range(K):
            s2[k] = n_draws * G[k]
        e2[:] = 0.0
        v2[:] = 0.0
        nh[:] = 0.0
        if hess_mode == HESSIAN_SAMPLED:
            for k in range(K):
                s2[k] -= Hr[i, k]
        elif hess_mode == HESSIAN_FULL:
            Wi = Hs[i]
            _hessian_forms(family, Wi, mean[i], var[i], inv_sigma2, v2, nh, work)
            for d in range(first, stop):
                _project(R, d, Wi, g)
                for k in range(K):
                    s2[k] -= g[k]
                    e2[k] += g[k] * g[k]
        col = slot2[2] * K
        for k in range(K):
            U2[i, col + k] = u * s2[k]
        if slot4[4] >= 0:
            c4, c5, c6, c7 = slot4[4] * K, slot4[5] * K, slot4[6] * K, slot4[7] * K
            lower, upper = bound_constants[i, 2], bound_constants[i, 3]
            for k in range(K):
                U4[i, c4 + k] = su * v2[k]
                U4[i, c5 + k] = uu * e2[k]
                U4[i, c6 + k] = su * nh[k] * lower
                U4[i, c7 + k] = su * nh[k] * upper


def squared_score_units(G, row_ptr, copy_weight, out):
    """``out[i, k] = u_i sum_d G[d, k]^2`` over the draws ``d`` of row ``i``, in parallel.

    Parameters
    ----------
    G : ndarray of shape (n_draws_total, K)
        Backpropagated residuals (per-draw score factors).
    row_ptr : ndarray of shape (n + 1,), int64
    copy_weight : ndarray of shape (n,)
    out : ndarray of shape (n, K)
    """
    n_blocks = -(-out.shape[0] // _UNIT_BLOCK_ROWS)
    run_blocks(_squared_score_blocks, n_blocks, _UNIT_BLOCK_ROWS, G, row_ptr, copy_weight, out)


@njit(cache=True, nogil=True)
def _squared_score_blocks(block_start, block_stop, block_size, G, row_ptr, copy_weight, out):
    """Rows of blocks ``block_start:block_stop`` of :func:`squared_score_units`."""
    K = G.shape[1]
    for i in range(block_start * block_size, min(out.shape[0], block_stop * block_size)):
        for k in range(K):
            out[i, k] = 0.0
        for d in range(row_ptr[i], row_ptr[i + 1]):
            for k in range(K):
                g = G[d, k]
                out[i, k] += g * g
        u = copy_weight[i]
        for k in range(K):
            out[i, k] *= u


# --------------------------------------------------------------------------
# Counter-based label draws
# --------------------------------------------------------------------------
#
# Every label is a pure function of (seed, virtual copy, draw): the draws of
# a row do not depend on the other rows, the block size, the thread count or
# the Dask chunking, and an integer sample weight draws exactly the labels of
# that many repeated rows.  The uniforms of one label come from a SplitMix64
# sequence started at a key mixed from the three counters (Steele, Lea and
# Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014).

SAMPLER_CODES = {"gaussian": 0, "bernoulli": 1, "poisson": 2, "softmax": 3}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, nogil=True, inline="always")
def _mix64(z):
    """The SplitMix64 finaliser (a bijection of uint64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def label_key(seed, copy, draw):
    """Start of the uniform stream of draw ``draw`` of virtual copy ``copy``."""
    inner = _mix64(np.uint64(seed) ^ _mix64(np.uint64(copy) * _GOLDEN + _GOLDEN))
    return _mix64(inner + np.uint64(draw) * _GOLDEN)


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, j):
    """The ``j``-th uniform in [0, 1) of the stream ``key``."""
    z = _mix64(key + (np.uint64(j) + np.uint64(1)) * _GOLDEN)
    return (z >> np.uint64(11)) * _TO_UNIT


@njit(cache=True, nogil=True)
def _poisson(lam, key, j):
    """A Poisson(``lam``) draw from the uniforms ``j, j+1, ...`` of ``key``.

    Inversion below ``lam = 10``; above, Hormann's transformed rejection
    (PTRS, 1993), as in NumPy's generator.  Returns the draw and the next ``j``.
    """
    if lam < 10.0:
        u = _uniform(key, j)
        k = 0
        p = np.exp(-lam)
        cdf = p
        # The cap only stops a rounding-starved tail search (cdf < u ~ 1).
        while u > cdf and k < 1000:
            k += 1
            p *= lam / k
            cdf += p
        return float(k), j + 1
    slam = np.sqrt(lam)
    loglam = np.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        U = _uniform(key, j) - 0.5
        V = _uniform(key, j + 1)
        j += 2
        us = 0.5 - abs(U)
        k = np.floor((2.0 * a / us + b) * U + lam + 0.43)
        if us >= 0.07 and V <= vr:
            return k, j
        if k < 0.0 or (us < 0.013 and V > us):
            continue
        if (np.log(V) + np.log(inv_alpha) - np.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return k, j


@njit(cache=True, nogil=True)
def draw_residuals(sampler, mean, inv_sigma2, first_copy, copies, n_draws, seed, row_ptr):
    """Effective residuals ``r = t(y) - E[t]`` for labels drawn from the model.

    Parameters
    ----------
    sampler : int
        ``SAMPLER_CODES[family]``.
    mean : ndarray of shape (n, C)
        Output means (probabilities for the softmax, ``h`` for the Gaussian,
        whose residual does not depend on it).
    inv_sigma2 : float
    first_copy, copies : ndarray of shape (n,), int64
        Global index of the first virtual copy of each row, and the number of
        copies.
    n_draws : int
        Labels per copy (``M``).
    seed : int
    row_ptr : ndarray of shape (n + 1,), int64
        ``row_ptr[i] = M * sum(copies[:i])``.

    Returns
    -------
    R : ndarray of shape (row_ptr[-1], C)
        Draw ``m`` of copy ``q`` of row ``i`` is row ``row_ptr[i] + q M + m``.
    """
    n, C = mean.shape
    R = np.empty((row_ptr[n], C))
    scale = np.sqrt(inv_sigma2)
    for i in range(n):
        for q in range(copies[i]):
            for m in range(n_draws):
                d = row_ptr[i] + q * n_draws + m
                key = label_key(seed, first_copy[i] + q, m)
                if sampler == 0:
                    # Box-Muller, both outputs of each pair of uniforms
                    for c in range(0, C, 2):
                        radius = np.sqrt(-2.0 * np.log(1.0 - _uniform(key, c)))
                        angle = 2.0 * np.pi * _uniform(key, c + 1)
                        R[d, c] = scale * radius * np.cos(angle)
                        if c + 1 < C:
                            R[d, c + 1] = scale * radius * np.sin(angle)
                elif sampler == 1:
                    for c in range(C):
                        p = mean[i, c]
                        R[d, c] = (1.0 if _uniform(key, c) < p else 0.0) - p
                elif sampler == 2:
                    j = 0
                    for c in range(C):
                        k, j = _poisson(mean[i, c], key, j)
                        R[d, c] = k - mean[i, c]
                else:
                    u = _uniform(key, 0)
                    label = C - 1
                    cdf = 0.0
                    for c in range(C):
                        cdf += mean[i, c]
                        if u < cdf:
                            label = c
                            break
                    for c in range(C):
                        R[d, c] = -mean[i, c]
                    R[d, label] += 1.0
    return R


@njit(cache=True, nogil=True)
def activation_derivatives(Z, code):
    """``phi(Z)``, ``phi'(Z)``, ``phi''(Z)`` elementwise.

    ``code``: 0 identity, 1 logistic, 2 tanh, 3 relu.
    """
    n, K = Z.shape
    A = np.empty((n, K))
    D1 = np.empty((n, K))
    D2 = np.empty((n, K))
    for i in range(n):
        for k in range(K):
            z = Z[i, k]
            if code == 0:
                A[i, k] = z
                D1[i, k] = 1.0
                D2[i, k] = 0.0
            elif code == 1:
                s = stable_sigmoid(z)
                A[i, k] = s
                D1[i, k] = s * (1.0 - s)
                D2[i, k] = s * (1.0 - s) * (1.0 - 2.0 * s)
            elif code == 2:
                t = np.tanh(z)
                A[i, k] = t
                D1[i, k] = 1.0 - t * t
                D2[i, k] = -2.0 * t * (1.0 - t * t)
            else:
                if z > 0:
                    A[i, k] = z
                    D1[i, k] = 1.0
                else:
                    A[i, k] = 0.0
                    D1[i, k] = 0.0
                D2[i, k] = 0.0
    return A, D1, D2


ACTIVATION_CODES = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3}


# --------------------------------------------------------------------------
# Dense passes (BLAS through NumPy)
# --------------------------------------------------------------------------


# Products are split into fixed pieces run on skmoe's thread pool, with BLAS
# itself held to one thread for the whole fit (see fisher_statistics): an
# idle multi-threaded BLAS spins on the cores the numba kernels need (on two
# cores the full fit ran 1.2-1.7x faster so).  Each piece is a whole BLAS
# call whose result does not depend on how the others are scheduled, so the
# results do not depend on the number of threads.

#: Rows per piece of :func:`row_matmul`; output columns per piece of
#: :func:`add_weighted_sums`.
_PRODUCT_ROWS = 1024
_PRODUCT_COLUMNS = 256


def _row_pieces(piece_start, piece_stop, A, B, out):
    for piece in range(piece_start, piece_stop):
        rows = slice(piece * _PRODUCT_ROWS, (piece + 1) * _PRODUCT_ROWS)
        np.matmul(A[rows], B, out=out[rows])


def row_matmul(A, B):
    """``A @ B`` for a 2-D ``A``, over fixed row pieces in parallel."""
    out = np.empty((A.shape[0], B.shape[1]))
    run_blocks(_row_pieces, -(-A.shape[0] // _PRODUCT_ROWS), A, B, out)
    return out


def _column_pieces(piece_start, piece_stop, weights_t, U, out):
    for piece in range(piece_start, piece_stop):
        cols = slice(piece * _PRODUCT_COLUMNS, (piece + 1) * _PRODUCT_COLUMNS)
        out[:, cols] += weights_t @ U[:, cols]


def add_weighted_sums(weights, U, out):
    """``out += weights.T @ U`` over fixed pieces of the columns of ``U``, in parallel.

    Each output entry is one dot product over all rows, computed by one
    BLAS call whatever the number of threads.
    """
    run_blocks(_column_pieces, -(-U.shape[1] // _PRODUCT_COLUMNS), weights.T, U, out)


def output_moments(family, H, inv_sigma2):
    """Means, variances and fourth central moments of ``t(y)`` given ``h``.

    Parameters
    ----------
    family : str
        "gaussian", "bernoulli", "poisson" or "softmax".
    H : ndarray of shape (n, C)
    inv_sigma2 : float

    Returns
    -------
    mean, var, mu4 : ndarray of shape (n, C)
        For "softmax", ``mean`` holds the probabilities and ``var``/``mu4``
        are the marginal Bernoulli moments (unused by the kernels).
    """
    if family == "gaussian":
        mean = H
        var = np.full_like(H, inv_sigma2)
        mu4 = 3.0 * var * var
    elif family == "bernoulli":
        mean = np.empty_like(H)
        pos = H >= 0
        mean[pos] = 1.0 / (1.0 + np.exp(-H[pos]))
        e = np.exp(H[~pos])
        mean[~pos] = e / (1.0 + e)
        var = mean * (1.0 - mean)
        mu4 = var * (1.0 - 3.0 * var)
    elif family == "poisson":
        mean = np.exp(H)
        var = mean.copy()
        mu4 = mean * (1.0 + 3.0 * mean)
    else:
        shifted = H - H.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        mean = e / e.sum(axis=1, keepdims=True)
        var = mean * (1.0 - mean)
        mu4 = var * (1.0 - 3.0 * var)
    return mean, var, mu4


def eigen_constants(family, mean, var, mu4, inv_sigma2):
    """Per-sample ``lambda_min/max`` of ``I(h)`` and of the 4th-moment matrix ``K``.

    ``K`` is the ``C^2 x C^2`` matrix ``E[(r r^T) (x) (r r^T)]`` flattened, so
    that ``E[(r^T v)^4] = (v (x) v)^T K (v (x) v)``.

    Returns
    -------
    lam_i_min, lam_i_max, lam_k_min, lam_k_max : ndarray of shape (n,)
    lam_h_min : ndarray of shape (n,)
        Lower constant of ``V_2 = w^T I w >= lam_h_min * NH`` with ``NH`` as
        in :func:`unit_statistics`: ``lam_i_min``, except for the softmax,
        whose ``I`` has the null vector ``1``: there ``NH = |w - mean(w)|^2``
        and ``lam_h_min`` is the second smallest eigenvalue of ``I``
        (Courant-Fischer on the complement of ``1``).
    """
    n, C = mean.shape
    if family == "gaussian":
        li = np.full(n, inv_sigma2)
        if C == 1:
            lk = np.full(n, 3.0 * inv_sigma2**2)
            return li, li, lk, lk, li
        return li, li, np.zeros(n), np.full(n, (C + 2.0) * inv_sigma2**2), li
    if family in ("bernoulli", "poisson"):
        li_min = var.min(axis=1)
        li_max = var.max(axis=1)
        if C == 1:
            return li_min, li_max, mu4[:, 0].copy(), mu4[:, 0].copy(), li_min
        # K on span{e_a (x) e_a}: diag(mu4 - var^2) + var var^T; on
        # span{e_a (x) e_b, e_b (x) e_a}: eigenvalues 2 var_a var_b and 0.
        Mdiag = var[:, :, None] * var[:, None, :]
        idx = np.arange(C)
        Mdiag[:, idx, idx] = mu4
        lam = np.linalg.eigvalsh(Mdiag)[:, -1]
        srt = np.sort(var, axis=1)
        lam = np.maximum(lam, 2.0 * srt[:, -1] * srt[:, -2])
        return li_min, li_max, np.zeros(n), lam, li_min
    # softmax
    p = mean
    cov = -p[:, :, None] * p[:, None, :]
    idx = np.arange(C)
    cov[:, idx, idx] += p
    eigenvalues = np.linalg.eigvalsh(cov)
    li_max = eigenvalues[:, -1]
    li_second = eigenvalues[:, 1] if C > 1 else np.zeros(n)
    # K = sum_c p_c (r_c (x) r_c)(r_c (x) r_c)^T with r_c = e_c - p: its nonzero
    # eigenvalues are those of the C x C Gram sqrt(p_c p_d) (r_c^T r_d)^2.
    p2 = (p * p).sum(axis=1)
    dots = -p[:, :, None] - p[:, None, :] + p2[:, None, None]
    dots[:, idx, idx] += 1.0
    gram = np.sqrt(p[:, :, None] * p[:, None, :]) * dots**2
    lk_max = np.linalg.eigvalsh(gram)[:, -1]
    return np.zeros(n), li_max, np.zeros(n), lk_max, np.maximum(li_second, 0.0)


def forward(coefs, intercepts, activation, X):
    """Forward pass keeping activations and activation derivatives.

    Returns
    -------
    acts : list of ndarray
        ``a_0 = X, a_1, ..., a_{L-1}``.
    d1, d2 : list of ndarray
        ``phi'(z_m)`` and ``phi''(z_m)`` for ``m = 1..L-1`` (index ``m-1``).
    H : ndarray of shape (n, C)
        Output natural parameters.
    """
    code = ACTIVATION_CODES[activation]
    acts = [X]
    d1 = []
    d2 = []
    L = len(coefs)
    for layer in range(L):
        Z = row_matmul(acts[-1], coefs[layer])
        Z += intercepts[layer]
        if layer == L - 1:
            return acts, d1, d2, Z
        a, p1, p2 = activation_derivatives(Z, code)
        acts.append(a)
        d1.append(p1)
        d2.append(p2)


def backward_directions(coefs, d1, directions):
    """Backpropagate ``s = r^T h`` for several directions ``r`` at once.

    Parameters
    ----------
    directions : ndarray of shape (n, P, C)

    Returns
    -------
    deltas : list of ndarray
        ``deltas[m]`` of shape (n, P, n_m) is ``ds/dz_m`` for ``m = 1..L``
        (index ``m``; ``deltas[0]`` is None).
    pre : list of ndarray
        ``pre[m] = ds/da_m`` (before multiplying by ``phi'``), ``m = 1..L-1``.
    """
    L = len(coefs)
    n, P, _ = directions.shape
    deltas = [None] * (L + 1)
    pre = [None] * (L + 1)
    deltas[L] = directions
    for m in range(L - 1, 0, -1):
        W = coefs[m]
        g = row_matmul(deltas[m + 1].reshape(n * P, -1), W.T).reshape(n, P, W.shape[0])
        pre[m] = g
        deltas[m] = g * d1[m - 1][:, None, :]
    return deltas, pre


def hessian_units(coefs, d1, d2, pre):
    """Exact ``d^2 s / dz_m[k]^2`` for every hidden unit and direction.

    Second-order backpropagation of the scalar ``s = r^T h``: with
    ``Q_m = d^2 s / dz_m dz_m^T``,
    ``Q_m = diag(phi''(z_m) * ds/da_m) + diag(phi'_m) W_m Q_{m+1} W_m^T diag(phi'_m)``
    and ``Q_L = 0``.  ``Q_{L-1}`` is diagonal; full matrices are formed only
    for ``2 <= m <= L-2`` (networks with three or more hidden layers).

    Returns
    -------
    hs : list of ndarray
        ``hs[m]`` of shape (n, P, n_m) for ``m = 1..L-1``; None elsewhere.
    """
    L = len(coefs)
    hs = [None] * (L + 1)
    d_next = None  # diagonal part of Q_{m+1}
    p_next = None  # full part of Q_{m+1} (None when zero)
    for m in range(L - 1, 0, -1):
        D = d2[m - 1][:, None, :] * pre[m]
        if m == L - 1:
            hs[m] = D
            p_full = None
        else:
            W = coefs[m]
            n, P, _ = D.shape
            s = row_matmul(d_next.reshape(n * P, -1), (W * W).T).reshape(n, P, W.shape[0])
            if p_next is not None:
                WP = np.matmul(W, p_next)  # (n, P, n_m, n_{m+1})
                s += np.einsum("npik,ik->npi", WP, W)
            phi1 = d1[m - 1][:, None, :]
            hs[m] = D + phi1 * phi1 * s
            if m > 1:
                Q = np.matmul(W * d_next[:, :, None, :], W.T)
                if p_next is not None:
                    Q += np.matmul(WP, W.T)
                p_full = phi1[..., :, None] * Q * phi1[..., None, :]
            else:
                p_full = None
        d_next = D
        p_next = p_full
    return hs
