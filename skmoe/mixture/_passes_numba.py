"""Numba backend of the Gaussian-gated MoE data passes (NumPy inputs).

Implements the contract of :mod:`skmoe.mixture._passes`: ``em_pass``,
``log_densities``, ``gate_probabilities`` and ``predictive_moments``, with
the parameters in the kernel layout described there.

Layout of the computation
-------------------------
Rows are split into a fixed number of *blocks* that depend only on
``n_samples`` (see :mod:`skmoe.utils._threading`); the ``_*_blocks``
kernels are ``nogil`` and handle a range of blocks, writing one partial
result per block, and the Python wrappers at the bottom of this module run
them on threads and combine the partial results in block order.  Results are
therefore bitwise identical whatever the number of threads.

Inside a block, rows are processed in *chunks* of ``_CHUNK`` rows copied into a
transposed float64 buffer ``Zt`` of shape ``(n_features + n_outputs, _CHUNK)``.
Every inner loop then runs over contiguous rows of a chunk, which LLVM
vectorises; no ``(n_samples, n_components, n_features)`` temporary is ever
formed.

Component ``k`` is parametrised as in :mod:`skmoe.mixture._passes`.
The expert residual is computed as ``(y - y_center) - A (x - mu)``, which
equals ``y - A x - b``; the centred vector ``u = (x - mu_k, y - y_center_k)``
is also what the M-step moments are accumulated from, so that the second
moments are taken about a point close to the new mean (the "shifted data"
algorithm), which avoids catastrophic cancellation in ``E[uu^T] - E[u]E[u]^T``.
"""

import numpy as np
from numba import njit

from ..utils._threading import block_partition, run_blocks

# Rows per vectorised chunk.  Fixed: changing it changes rounding, not results.
_CHUNK = 256

_LOG_2PI = np.log(2.0 * np.pi)

# No "nnan"/"ninf": log-probabilities of -inf (zero weights) must survive.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


@njit(cache=True)
def _load_chunk(X, Y, start, stop, Zt):
    """Copy rows ``start:stop`` of ``[X, Y]`` transposed into float64 ``Zt``."""
    n_features = X.shape[1]
    n_outputs = Y.shape[1]
    for r in range(stop - start):
        for a in range(n_features):
            Zt[a, r] = X[start + r, a]
        for a in range(n_outputs):
            Zt[n_features + a, r] = Y[start + r, a]


@njit(cache=True, fastmath=_FASTMATH)
def _center_chunk(Zt, n_rows, k, means, y_centers, U):
    """``U[:, :n_rows] = Zt[:, :n_rows] - (means[k], y_centers[k])``."""
    n_features = means.shape[1]
    n_outputs = y_centers.shape[1]
    for a in range(n_features):
        m = means[k, a]
        for r in range(n_rows):
            U[a, r] = Zt[a, r] - m
    for a in range(n_outputs):
        m = y_centers[k, a]
        for r in range(n_rows):
            U[n_features + a, r] = Zt[n_features + a, r] - m


@njit(cache=True, fastmath=_FASTMATH)
def _add_linear_combination(V, offset, coeffs, n_terms, n_rows, t):
    """``t[r] += sum_{i < n_terms} coeffs[i] * V[offset + i, r]`` for ``r < n_rows``.

    Four terms per sweep over the rows, so that each load and store of ``t``
    carries four multiply-adds (a single-term loop is bound by the stores).
    """
    i = 0
    while i + 4 <= n_terms:
        c0 = coeffs[i]
        c1 = coeffs[i + 1]
        c2 = coeffs[i + 2]
        c3 = coeffs[i + 3]
        for r in range(n_rows):
            t[r] += (
                V[offset + i, r] * c0
                + V[offset + i + 1, r] * c1
                + V[offset + i + 2, r] * c2
                + V[offset + i + 3, r] * c3
            )
        i += 4
    while i < n_terms:
        c = coeffs[i]
        for r in range(n_rows):
            t[r] += V[offset + i, r] * c
        i += 1


@njit(cache=True)
def _is_diagonal(prec_chol, k):
    """Whether the upper-triangular factor ``prec_chol[k]`` is diagonal."""
    dim = prec_chol.shape[1]
    for j in range(dim):
        for i in range(j):
            if prec_chol[k, i, j] != 0.0:
                return False
    return True


@njit(cache=True, fastmath=_FASTMATH)
def _half_sq_mahalanobis(V, offset, dim, n_rows, prec_chol, k, t, out):
    """``out[r] -= 0.5 * ||V[offset:offset+dim, r]^T P_k||^2`` (P upper).

    Diagonal factors ("diag" and "spherical" gates, one output's noise) take
    ``dim`` multiply-adds per row instead of ``dim (dim + 1) / 2``; the test
    costs ``dim^2 / 2`` comparisons per chunk, against ``_CHUNK`` times as
    many operations for the product itself.
    """
    if _is_diagonal(prec_chol, k):
        for j in range(dim):
            p = prec_chol[k, j, j]
            for r in range(n_rows):
                z = V[offset + j, r] * p
                out[r] -= 0.5 * z * z
        return
    for j in range(dim):
        for r in range(n_rows):
            t[r] = 0.0
        _add_linear_combination(V, offset, prec_chol[k, :, j], j + 1, n_rows, t)
        for r in range(n_rows):
            out[r] -= 0.5 * t[r] * t[r]


@njit(cache=True, fastmath=_FASTMATH)
def _component_log_density(
    U,
    n_rows,
    k,
    n_features,
    gate_prec_chol,
    gate_log_det,
    coef,
    noise_prec_chol,
    noise_log_det,
    E,
    t,
    out,
    gate_out,
):
    """Log of ``N(x | mu_k, Sigma_k) N(y | A_k x + b_k, S_k)`` for centred ``U``.

    ``U`` holds ``x - mu_k`` in its first ``n_features`` rows and
    ``y - y_center_k`` in the next ``n_outputs`` rows (none for a gate-only
    evaluation).  ``E`` receives the expert residuals ``y - A_k x - b_k``.
    If ``gate_out`` is not empty it also receives ``log N(x | mu_k, Sigma_k)``
    alone, so that ``log p(x)`` costs no second gate evaluation.
    """
    n_outputs = coef.shape[1]
    const = gate_log_det[k] - 0.5 * n_features * _LOG_2PI
    for r in range(n_rows):
        out[r] = const
    _half_sq_mahalanobis(U, 0, n_features, n_rows, gate_prec_chol, k, t, out)
    if gate_out.shape[0] > 0:
        for r in range(n_rows):
            gate_out[r] = out[r]
    if n_outputs == 0:
        return
    const = noise_log_det[k] - 0.5 * n_outputs * _LOG_2PI
    for a in range(n_outputs):
        residual = E[a]
        for r in range(n_rows):
            t[r] = 0.0
        _add_linear_combination(U, 0, coef[k, a], n_features, n_rows, t)
        for r in range(n_rows):
            residual[r] = U[n_features + a, r] - t[r]
    for r in range(n_rows):
        out[r] += const
    _half_sq_mahalanobis(E, 0, n_outputs, n_rows, noise_prec_chol, k, t, out)


# exp(x) = 2^k exp(r), k = round(x / ln 2), |r| <= ln(2) / 2, with ln 2 split
# in a high part exact in k * _LN2_HI (fdlibm) and a low part.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Below this the result is under 2^-1021: returned as 0.
_EXP_MIN_ARG = -708.0


# No "reassoc" here: it would merge the two-part range reduction.
@njit(cache=True, fastmath={"nsz", "arcp", "contract"})
def _exp_nonpositive(x, n, bits):
    """In place ``x[:n] = exp(x[:n])`` for ``x <= 0`` (``-inf`` allowed).

    A loop LLVM can vectorise (libm's scalar ``exp`` cannot be, and dominated
    the E-step): degree-12 Taylor polynomial on the reduced argument
    (truncation error < 2e-16 relative), and ``2^k`` assembled from its
    IEEE-754 bits in the int64 buffer ``bits``.  Maximum relative error about
    2 ulp; arguments below -708 give 0.
    """
    scale = bits.view(np.float64)
    for i in range(n):
        v = max(x[i], _EXP_MIN_ARG)
        k = np.floor(v * _LOG2E + 0.5)
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        bits[i] = (np.int64(k) + 1023) << 52 if x[i] > _EXP_MIN_ARG else 0
        x[i] = p
    for i in range(n):
        x[i] *= scale[i]


@njit(cache=True, fastmath=_FASTMATH)
def _normalize_log_prob(log_prob, n_rows, log_norm, work, bits):
    """In place, turn ``log_prob[k, r]`` into ``exp(log_prob - logsumexp_k)``.

    ``log_norm[r]`` receives the log-sum-exp over components.  Rows whose
    components all have probability zero get ``-inf`` and zero weights.
    ``work`` (float64) and ``bits`` (int64) are scratch buffers of at least
    ``n_rows`` entries.  Every loop runs over rows, so all of them vectorise.
    """
    n_components = log_prob.shape[0]
    vmax = log_norm
    for r in range(n_rows):
        vmax[r] = -np.inf
    for k in range(n_components):
        for r in range(n_rows):
            vmax[r] = max(vmax[r], log_prob[k, r])
    for r in range(n_rows):
        vmax[r] = 0.0 if vmax[r] == -np.inf else vmax[r]
        work[r] = 0.0
    for k in range(n_components):
        row = log_prob[k]
        for r in range(n_rows):
            row[r] -= vmax[r]
        _exp_nonpositive(row, n_rows, bits)
        for r in range(n_rows):
            work[r] += row[r]
    for r in range(n_rows):
        log_norm[r] = vmax[r] + np.log(work[r]) if work[r] > 0.0 else -np.inf
        work[r] = 1.0 / work[r] if work[r] > 0.0 else 0.0
    for k in range(n_components):
        for r in range(n_rows):
            log_prob[k, r] *= work[r]


@njit(cache=True, fastmath=_FASTMATH)
def _accumulate_moments(U, w, n_rows, s1, s2, wu):
    """``s1 += sum_r w_r u_r``, upper triangle of ``s2 += sum_r w_r u_r u_r^T``.

    ``wu`` is a scratch buffer.  Four columns of ``s2`` per sweep over the
    rows (four independent reductions sharing one load of ``w_r u_ra``).

    Returns
    -------
    s0 : float
        ``sum_r w_r``.
    """
    dim = U.shape[0]
    s0 = 0.0
    for r in range(n_rows):
        s0 += w[r]
    for a in range(dim):
        acc = 0.0
        for r in range(n_rows):
            wu[r] = w[r] * U[a, r]
            acc += wu[r]
        s1[a] += acc
        b = a
        while b + 4 <= dim:
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            acc3 = 0.0
            for r in range(n_rows):
                x = wu[r]
                acc0 += x * U[b, r]
                acc1 += x * U[b + 1, r]
                acc2 += x * U[b + 2, r]
                acc3 += x * U[b + 3, r]
            s2[a, b] += acc0
            s2[a, b + 1] += acc1
            s2[a, b + 2] += acc2
            s2[a, b + 3] += acc3
            b += 4
        while b < dim:
            acc = 0.0
            for r in range(n_rows):
                acc += wu[r] * U[b, r]
            s2[a, b] += acc
            b += 1
    return s0


@njit(cache=True)
def _chunk_buffers(dim, n_outputs, n_components):
    """Per-thread scratch arrays for one chunk of rows.

    Returns ``(Zt, U, E, t, log_prob, log_norm, work, bits)``: the transposed
    chunk and its centred copy (``dim`` rows), the expert residuals
    (``n_outputs`` rows), one row of scratch, the per-component
    log-probabilities, and the buffers of :func:`_normalize_log_prob`.
    """
    return (
        np.empty((dim, _CHUNK)),
        np.empty((dim, _CHUNK)),
        np.empty((n_outputs, _CHUNK)),
        np.empty(_CHUNK),
        np.empty((n_components, _CHUNK)),
        np.empty(_CHUNK),
        np.empty(_CHUNK),
        np.empty(_CHUNK, dtype=np.int64),
    )


@njit(cache=True, fastmath=_FASTMATH)
def _chunk_log_probs(
    Zt, n_rows, log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
    noise_prec_chol, noise_log_det, U, E, t, log_prob, log_gate,
):
    """``log_prob[k, r] = log pi_k + log N(x_r | .) [+ log N(y_r | .)]`` for a chunk.

    The expert term is included when ``coef`` has outputs.  If ``log_gate``
    has columns it receives the gate-only ``log pi_k + log N(x_r | .)``.
    ``U`` is left holding the centred chunk of the last component.
    """
    n_features = means.shape[1]
    with_gate = log_gate.shape[1] > 0
    for k in range(means.shape[0]):
        _center_chunk(Zt, n_rows, k, means, y_centers, U)
        _component_log_density(
            U, n_rows, k, n_features, gate_prec_chol, gate_log_det,
            coef, noise_prec_chol, noise_log_det, E, t, log_prob[k], log_gate[k],
        )
        for r in range(n_rows):
            log_prob[k, r] += log_weights[k]
        if with_gate:
            for r in range(n_rows):
                log_gate[k, r] += log_weights[k]


@njit(cache=True, fastmath=_FASTMATH)
def _weigh_rows(sample_weight, start, n_rows, resp, log_norm):
    """Multiply a chunk's responsibilities and log-likelihoods by the row weights.

    ``resp[k, r]`` and ``log_norm[r]`` belong to row ``start + r``.  A row
    of weight zero gets a log-likelihood term of exactly zero, whatever its
    density, so that it is the same as a dropped row.
    """
    for r in range(n_rows):
        w = sample_weight[start + r]
        log_norm[r] = w * log_norm[r] if w != 0.0 else 0.0
    for k in range(resp.shape[0]):
        row = resp[k]
        for r in range(n_rows):
            row[r] *= sample_weight[start + r]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _em_blocks(
    block_start,
    block_stop,
    block_size,
    X,
    Y,
    log_weights,
    means,
    gate_prec_chol,
    gate_log_det,
    y_centers,
    coef,
    noise_prec_chol,
    noise_log_det,
    sample_weight,
    block_ll,
    block_s0,
    block_s1,
    block_s2,
):
    """Fused E-step and moments for blocks ``block_start:block_stop``.

    Moments are skipped when ``block_s1`` has no columns.  If
    ``sample_weight`` is not empty, row ``n``'s responsibilities and
    log-likelihood are multiplied by ``sample_weight[n]``; a row of weight
    zero adds exactly nothing (not ``0 * -inf``).
    """
    n_samples, n_features = X.shape
    n_outputs = Y.shape[1]
    n_components = means.shape[0]
    dim = n_features + n_outputs
    with_moments = block_s1.shape[2] > 0
    weighted = sample_weight.shape[0] > 0
    Zt, U, E, t, log_prob, log_norm, work, bits = _chunk_buffers(dim, n_outputs, n_components)
    no_gate = np.empty((n_components, 0))
    for b in range(block_start, block_stop):
        stop_b = min(n_samples, (b + 1) * block_size)
        for start in range(b * block_size, stop_b, _CHUNK):
            stop = min(stop_b, start + _CHUNK)
            n_rows = stop - start
            _load_chunk(X, Y, start, stop, Zt)
            _chunk_log_probs(
                Zt, n_rows, log_weights, means, gate_prec_chol, gate_log_det, y_centers,
                coef, noise_prec_chol, noise_log_det, U, E, t, log_prob, no_gate,
            )
            _normalize_log_prob(log_prob, n_rows, log_norm, work, bits)
            if weighted:
                _weigh_rows(sample_weight, start, n_rows, log_prob, log_norm)
            for r in range(n_rows):
                block_ll[b] += log_norm[r]
            if with_moments:
                for k in range(n_components):
                    _center_chunk(Zt, n_rows, k, means, y_centers, U)
                    block_s0[b, k] += _accumulate_moments(
                        U, log_prob[k], n_rows, block_s1[b, k], block_s2[b, k], work
                    )


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _log_density_blocks(
    block_start,
    block_stop,
    block_size,
    X,
    Y,
    log_weights,
    means,
    gate_prec_chol,
    gate_log_det,
    y_centers,
    coef,
    noise_prec_chol,
    noise_log_det,
    log_joint,
    log_marginal_x,
):
    """Per-row ``log p(x, y)`` and ``log p(x)`` for a range of blocks."""
    n_samples, n_features = X.shape
    n_outputs = Y.shape[1]
    n_components = means.shape[0]
    dim = n_features + n_outputs
    Zt, U, E, t, log_prob, log_norm, work, bits = _chunk_buffers(dim, n_outputs, n_components)
    log_gate = np.empty((n_components, _CHUNK))
    for b in range(block_start, block_stop):
        stop_b = min(n_samples, (b + 1) * block_size)
        for start in range(b * block_size, stop_b, _CHUNK):
            stop = min(stop_b, start + _CHUNK)
            n_rows = stop - start
            _load_chunk(X, Y, start, stop, Zt)
            _chunk_log_probs(
                Zt, n_rows, log_weights, means, gate_prec_chol, gate_log_det, y_centers,
                coef, noise_prec_chol, noise_log_det, U, E, t, log_prob, log_gate,
            )
            _normalize_log_prob(log_prob, n_rows, log_norm, work, bits)
            for r in range(n_rows):
                log_joint[start + r] = log_norm[r]
            _normalize_log_prob(log_gate, n_rows, log_norm, work, bits)
            for r in range(n_rows):
                log_marginal_x[start + r] = log_norm[r]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _predictive_blocks(
    block_start,
    block_stop,
    block_size,
    X,
    log_weights,
    means,
    gate_prec_chol,
    gate_log_det,
    coef,
    intercept,
    noise_var,
    gates,
    mean,
    var,
):
    """Gate probabilities and, if ``mean`` has columns, predictive moments.

    ``var`` is ``sum_k g_k (S_k,aa + (m_k,a - mean_a)^2)``: the law of total
    variance written without the cancellation of ``E[m^2] - E[m]^2``.
    """
    n_samples, n_features = X.shape
    n_outputs = mean.shape[1]
    n_components = means.shape[0]
    no_y = np.empty((n_samples, 0), dtype=X.dtype)
    no_centers = np.empty((n_components, 0))
    no_coef = np.empty((n_components, 0, n_features))
    no_prec = np.empty((n_components, 0, 0))
    no_gate = np.empty((n_components, 0))
    Zt, U, E, t, gate, log_norm, work, bits = _chunk_buffers(n_features, 0, n_components)
    expert_mean = np.empty((n_components, n_outputs, _CHUNK))
    acc = np.empty(_CHUNK)
    for b in range(block_start, block_stop):
        stop_b = min(n_samples, (b + 1) * block_size)
        for start in range(b * block_size, stop_b, _CHUNK):
            stop = min(stop_b, start + _CHUNK)
            n_rows = stop - start
            _load_chunk(X, no_y, start, stop, Zt)
            _chunk_log_probs(
                Zt, n_rows, log_weights, means, gate_prec_chol, gate_log_det, no_centers,
                no_coef, no_prec, gate_log_det, U, E, t, gate, no_gate,
            )
            for k in range(n_components):
                for a in range(n_outputs):
                    expert = expert_mean[k, a]
                    for r in range(n_rows):
                        expert[r] = intercept[k, a]
                    _add_linear_combination(Zt, 0, coef[k, a], n_features, n_rows, expert)
            _normalize_log_prob(gate, n_rows, log_norm, work, bits)
            if gates.shape[1] > 0:
                for r in range(n_rows):
                    for k in range(n_components):
                        gates[start + r, k] = gate[k, r]
            for a in range(n_outputs):
                for r in range(n_rows):
                    acc[r] = 0.0
                for k in range(n_components):
                    for r in range(n_rows):
                        acc[r] += gate[k, r] * expert_mean[k, a, r]
                for r in range(n_rows):
                    mean[start + r, a] = acc[r]
                    t[r] = 0.0
                for k in range(n_components):
                    s = noise_var[k, a]
                    for r in range(n_rows):
                        dev = expert_mean[k, a, r] - acc[r]
                        t[r] += gate[k, r] * (s + dev * dev)
                for r in range(n_rows):
                    var[start + r, a] = t[r]


# --------------------------------------------------------------------------
# Python entry points: allocate outputs, run the blocks, reduce in order.
# --------------------------------------------------------------------------


def _check_outputs(Y, y_centers, coef):
    if coef.shape[1] != Y.shape[1] or y_centers.shape[1] != Y.shape[1]:
        raise ValueError(
            f"coef and y_centers have {coef.shape[1]} outputs but Y has {Y.shape[1]}."
        )


def em_pass(
    X,
    Y,
    log_weights,
    means,
    gate_prec_chol,
    gate_log_det,
    y_centers,
    coef,
    noise_prec_chol,
    noise_log_det,
    with_moments,
    *,
    sample_weight=None,
    xp=None,
):
    """One fused E-step and sufficient-statistics pass over ``(X, Y)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    Y : ndarray of shape (n_samples, n_outputs), same dtype as ``X``
    log_weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    gate_prec_chol : ndarray of shape (n_components, n_features, n_features)
        Upper-triangular precision Cholesky factors of the gates.
    gate_log_det : ndarray of shape (n_components,)
    y_centers : ndarray of shape (n_components, n_outputs)
    coef : ndarray of shape (n_components, n_outputs, n_features)
    noise_prec_chol : ndarray of shape (n_components, n_outputs, n_outputs)
    noise_log_det : ndarray of shape (n_components,)
    with_moments : bool
        If False only the log-likelihood is computed.
    sample_weight : ndarray of shape (n_samples,), default=None
        Non-negative float64 row weights ``w_n``: every sum below becomes
        ``sum_n w_n (...)``.  None is weight one for every row.
    xp : None, default=None
        Namespace of ``X``: always None (NumPy) for this backend.

    Returns
    -------
    log_likelihood : float
        ``sum_n log p(x_n, y_n)``.
    s0 : ndarray of shape (n_components,)
        ``sum_n r_nk``.
    s1 : ndarray of shape (n_components, dim)
        ``sum_n r_nk u_nk`` with ``u_nk = (x_n - mu_k, y_n - y_center_k)``;
        ``dim = n_features + n_outputs`` (0 if ``with_moments`` is False).
    s2 : ndarray of shape (n_components, dim, dim)
        ``sum_n r_nk u_nk u_nk^T``, symmetric.
    """
    _check_outputs(Y, y_centers, coef)
    n_components = means.shape[0]
    dim = X.shape[1] + Y.shape[1] if with_moments else 0
    n_blocks, block_size = block_partition(X.shape[0])
    block_ll = np.zeros(n_blocks)
    block_s0 = np.zeros((n_blocks, n_components))
    block_s1 = np.zeros((n_blocks, n_components, dim))
    block_s2 = np.zeros((n_blocks, n_components, dim, dim))
    if sample_weight is None:
        sample_weight = np.empty(0)
    run_blocks(
        _em_blocks, n_blocks, block_size, X, Y, log_weights, means, gate_prec_chol,
        gate_log_det, y_centers, coef, noise_prec_chol, noise_log_det,
        np.ascontiguousarray(sample_weight, dtype=np.float64),
        block_ll, block_s0, block_s1, block_s2,
    )
    s2 = block_s2.sum(axis=0)
    # Only the upper triangle was accumulated.
    s2 = np.triu(s2) + np.swapaxes(np.triu(s2, 1), 1, 2)
    return float(block_ll.sum()), block_s0.sum(axis=0), block_s1.sum(axis=0), s2


def log_densities(
    X,
    Y,
    log_weights,
    means,
    gate_prec_chol,
    gate_log_det,
    y_centers,
    coef,
    noise_prec_chol,
    noise_log_det,
    *,
    xp=None,
):
    """Per-sample ``log p(x, y)`` and ``log p(x)``.

    Parameters are as in :func:`em_pass`; ``Y`` may have zero columns (with
    ``y_centers``, ``coef`` and ``noise_prec_chol`` having zero outputs), in
    which case both outputs equal ``log p(x)``.

    Returns
    -------
    log_joint : ndarray of shape (n_samples,)
    log_marginal_x : ndarray of shape (n_samples,)
    """
    _check_outputs(Y, y_centers, coef)
    n_samples = X.shape[0]
    n_blocks, block_size = block_partition(n_samples)
    log_joint = np.empty(n_samples)
    log_marginal_x = np.empty(n_samples)
    run_blocks(
        _log_density_blocks, n_blocks, block_size, X, Y, log_weights, means,
        gate_prec_chol, gate_log_det, y_centers, coef, noise_prec_chol, noise_log_det,
        log_joint, log_marginal_x,
    )
    return log_joint, log_marginal_x


def gate_probabilities(X, log_weights, means, gate_prec_chol, gate_log_det, *, xp=None):
    """Gate probabilities ``g_k(x_n)``, shape ``(n_samples, n_components)``."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    n_blocks, block_size = block_partition(n_samples)
    gates = np.empty((n_samples, n_components))
    no_outputs = np.empty((n_samples, 0))
    run_blocks(
        _predictive_blocks, n_blocks, block_size, X, log_weights, means,
        gate_prec_chol, gate_log_det, np.empty((n_components, 0, n_features)),
        np.empty((n_components, 0)), np.empty((n_components, 0)),
        gates, no_outputs, no_outputs,
    )
    return gates


def predictive_moments(
    X, log_weights, means, gate_prec_chol, gate_log_det, coef, intercept, noise_var, *, xp=None
):
    """Mean and variance of the predictive mixture ``p(y | x)`` per output.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    log_weights, means, gate_prec_chol, gate_log_det
        Gate parameters as in :func:`em_pass`.
    coef : ndarray of shape (n_components, n_outputs, n_features)
    intercept : ndarray of shape (n_components, n_outputs)
    noise_var : ndarray of shape (n_components, n_outputs)
        Diagonal of the expert noise covariances.

    Returns
    -------
    mean : ndarray of shape (n_samples, n_outputs)
        ``sum_k g_k(x) (A_k x + b_k)``.
    var : ndarray of shape (n_samples, n_outputs)
        Variance of ``p(y | x)`` per output (law of total variance).
    """
    n_samples = X.shape[0]
    n_outputs = coef.shape[1]
    n_blocks, block_size = block_partition(n_samples)
    mean = np.empty((n_samples, n_outputs))
    var = np.empty((n_samples, n_outputs))
    run_blocks(
        _predictive_blocks, n_blocks, block_size, X, log_weights, means,
        gate_prec_chol, gate_log_det, coef, intercept, noise_var,
        np.empty((n_samples, 0)), mean, var,
    )
    return mean, var
