"""Numba kernels for :class:`skmoe.SGDMoERegressor`: one call runs a whole stage.

A stage walks a stream of row indices ``idx`` (each row used once per
occurrence) and takes ``len(idx) // batch_size`` SGD steps with gradients
averaged over ``batch_size`` consecutive rows.  One kernel call runs the
steps ``first_step .. last_step - 1`` of the stage, so the caller can run a
stage in recording intervals and report each to its convergence monitor;
running a stage in one call or in several gives the same bits.  Each call
returns the mean correlation loss of the rows it used, each evaluated with
the parameters before the step that uses it (a progressive, online estimate
of the population loss).  No random numbers are drawn inside the kernels:
the stream order and the initialisation come from the caller, so results
are a deterministic function of the inputs.

Notation: ``h_k = He_k / sqrt(k!)`` is the normalised Hermite polynomial and
``h_k' = sqrt(k) h_{k-1}`` (both from :mod:`skmoe.utils._numba_math`).
Neurons are unit vectors ``w`` with fixed signs ``a`` in ``{-1, +1}``; the
loss of a neuron is the correlation loss
``-y a h_k(w^T x)`` and the update is the spherical step
``w <- normalize(w + lr (I - w w^T) y a h_k'(w^T x) x)``, followed by a
Gram-Schmidt pass over the neurons of a group when ``orthogonalize`` is set
(a QR retraction onto the Stiefel manifold).
"""

import numpy as np
from numba import njit

from ..utils._numba_math import hermite_and_derivative, softmax_inplace

# Step size at the end of a stage, relative to the initial one.
FINAL_LR_RATIO = 0.05


@njit(cache=True, nogil=True)
def step_size(lr, step, anneal_start, n_steps):
    """``lr`` until ``anneal_start``, then harmonic decay to ``FINAL_LR_RATIO * lr``."""
    if step < anneal_start or n_steps <= anneal_start:
        return lr
    frac = (step - anneal_start) / (n_steps - anneal_start)
    return lr / (1.0 + (1.0 / FINAL_LR_RATIO - 1.0) * frac)


@njit(cache=True, nogil=True)
def _mean(total, count):
    """``total / count``, NaN when ``count`` is zero."""
    return total / count if count > 0 else np.nan


@njit(cache=True, nogil=True)
def _gram_schmidt(W):
    """Orthonormalise the rows of ``W`` in order, in place.

    A row whose residual vanishes (numerically dependent) is left
    normalised but not orthogonalised.
    """
    n_rows, d = W.shape
    for j in range(n_rows):
        saved = W[j].copy()
        for i in range(j):
            proj = 0.0
            for a in range(d):
                proj += W[j, a] * W[i, a]
            for a in range(d):
                W[j, a] -= proj * W[i, a]
        norm = 0.0
        for a in range(d):
            norm += W[j, a] * W[j, a]
        norm = np.sqrt(norm)
        if norm > 1e-8:
            for a in range(d):
                W[j, a] /= norm
        else:
            W[j] = saved


@njit(cache=True, nogil=True)
def _topk_gates(scores, top_k, gates):
    """Softmax over the ``top_k`` largest ``scores``; zeros elsewhere (ties: lowest index)."""
    _topk_gates_into(scores, top_k, gates, np.zeros(scores.shape[0], dtype=np.bool_))


@njit(cache=True, nogil=True)
def _topk_gates_into(scores, top_k, gates, chosen):
    """:func:`_topk_gates` with a caller-owned work buffer ``chosen`` (no allocation)."""
    n = scores.shape[0]
    gates[:] = 0.0
    if n == 1:
        gates[0] = 1.0
        return
    chosen[:] = False
    best_score = -np.inf
    for r in range(top_k):
        best = -1
        for m in range(n):
            if not chosen[m] and (best < 0 or scores[m] > scores[best]):
                best = m
        chosen[best] = True
        if r == 0:
            best_score = scores[best]
    # A softmax over the chosen experts only (cheaper than a masked
    # softmax_inplace: no exp for the others), shifted by the largest score.
    total = 0.0
    for m in range(n):
        if chosen[m]:
            gates[m] = np.exp(scores[m] - best_score)
            total += gates[m]
    for m in range(n):
        gates[m] /= total


@njit(cache=True, nogil=True)
def topk_gates_rows(scores, top_k, gates):
    """:func:`_topk_gates` on every row of ``scores`` into ``gates`` (same shape)."""
    for i in range(scores.shape[0]):
        _topk_gates(scores[i], top_k, gates[i])


@njit(cache=True, nogil=True)
def neuron_sgd(
    X, y, idx, batch_size, W, signs, router, top_k, k, lr, anneal_start, orthogonalize,
    first_step, last_step,
):
    """Spherical online SGD of the neurons of every expert under a fixed router.

    The loss of a row is ``-y sum_m pi_m(x) sum_j signs[m, j] h_k(W[m, j]^T x)``
    with the gates ``pi`` of the fixed router.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Targets (standardised by the caller).
    idx : ndarray of int64
        Row stream.
    batch_size : int
    W : ndarray of shape (n_experts, n_neurons, n_features)
        Unit neurons, updated in place.
    signs : ndarray of shape (n_experts, n_neurons)
        Fixed second-layer signs.
    router : ndarray of shape (n_experts, n_features)
        Router weights; sample ``x`` updates the experts among the ``top_k``
        largest ``router @ x``, weighted by the softmax over those.
    top_k : int
    k : int
        Degree of the Hermite activation.
    lr : float
        Initial step size.
    anneal_start : int
        Step from which the step size decays, see :func:`step_size`.
    orthogonalize : bool
        Gram-Schmidt the neurons of each expert after every step.
    first_step, last_step : int
        Steps of the stage run by this call, ``0 <= first_step <= last_step
        <= len(idx) // batch_size``.

    Returns
    -------
    loss : float
        Mean loss of the ``(last_step - first_step) * batch_size`` rows used
        (NaN if none).
    """
    n_experts, n_neurons, d = W.shape
    n_steps = idx.shape[0] // batch_size
    grad = np.zeros((n_experts, n_neurons, d))
    scores = np.empty(n_experts)
    gates = np.empty(n_experts)
    xi = np.empty(d)
    touched = np.zeros(n_experts, dtype=np.bool_)
    loss = 0.0
    for step in range(first_step, last_step):
        eta = step_size(lr, step, anneal_start, n_steps) / batch_size
        grad[:] = 0.0
        touched[:] = False
        for b in range(batch_size):
            i = idx[step * batch_size + b]
            for a in range(d):
                xi[a] = X[i, a]
            yi = y[i]
            for m in range(n_experts):
                s = 0.0
                for a in range(d):
                    s += router[m, a] * xi[a]
                scores[m] = s
            _topk_gates(scores, top_k, gates)
            for m in range(n_experts):
                if gates[m] == 0.0:
                    continue
                touched[m] = True
                for j in range(n_neurons):
                    t = 0.0
                    for a in range(d):
                        t += W[m, j, a] * xi[a]
                    h, dh = hermite_and_derivative(t, k)
                    loss -= gates[m] * yi * signs[m, j] * h
                    c = gates[m] * yi * signs[m, j] * dh
                    for a in range(d):
                        grad[m, j, a] += c * xi[a]
        for m in range(n_experts):
            if not touched[m]:
                continue
            for j in range(n_neurons):
                radial = 0.0
                for a in range(d):
                    radial += grad[m, j, a] * W[m, j, a]
                norm = 0.0
                for a in range(d):
                    W[m, j, a] += eta * (grad[m, j, a] - radial * W[m, j, a])
                    norm += W[m, j, a] * W[m, j, a]
                norm = np.sqrt(norm)
                for a in range(d):
                    W[m, j, a] /= norm
            if orthogonalize:
                _gram_schmidt(W[m])
    return _mean(loss, (last_step - first_step) * batch_size)


@njit(cache=True, nogil=True)
def router_sgd(X, y, idx, batch_size, U, signs, k, router, lr, first_step, last_step):
    """Online SGD of a linear softmax router in front of single-neuron experts.

    Expert ``m`` outputs ``f_m(x) = signs[m] h_k(U[m]^T x)``, the mixture is
    ``F(x) = sum_m pi_m(x) f_m(x)`` with ``pi = softmax(router @ x)``, and the
    loss is the correlation loss ``-y F(x)``, whose gradient in ``router[m]``
    is ``-y pi_m (f_m - F) x``.

    Parameters
    ----------
    X, y, idx, batch_size
        As in :func:`neuron_sgd`.
    U : ndarray of shape (n_experts, n_features)
        Expert directions (fixed).
    signs : ndarray of shape (n_experts,)
    k : int
    router : ndarray of shape (n_experts, n_features)
        Updated in place.
    lr : float
    first_step, last_step : int
        As in :func:`neuron_sgd`.

    Returns
    -------
    loss : float
        Mean of ``-y F(x)`` over the rows used (NaN if none).
    """
    n_experts, d = router.shape
    grad = np.zeros((n_experts, d))
    f = np.empty(n_experts)
    pi = np.empty(n_experts)
    xi = np.empty(d)
    step_size = lr / batch_size
    loss = 0.0
    for step in range(first_step, last_step):
        grad[:] = 0.0
        for b in range(batch_size):
            i = idx[step * batch_size + b]
            for a in range(d):
                xi[a] = X[i, a]
            yi = y[i]
            for m in range(n_experts):
                s = 0.0
                t = 0.0
                for a in range(d):
                    s += router[m, a] * xi[a]
                    t += U[m, a] * xi[a]
                h, _ = hermite_and_derivative(t, k)
                f[m] = signs[m] * h
                pi[m] = s
            softmax_inplace(pi)
            mix = 0.0
            for m in range(n_experts):
                mix += pi[m] * f[m]
            loss -= yi * mix
            for m in range(n_experts):
                c = yi * pi[m] * (f[m] - mix)
                for a in range(d):
                    grad[m, a] += c * xi[a]
        for m in range(n_experts):
            for a in range(d):
                router[m, a] += step_size * grad[m, a]
    return _mean(loss, (last_step - first_step) * batch_size)


@njit(cache=True, nogil=True)
def predict_blocks(
    block_start, block_stop, block_size, X, router, top_k, W, coef, intercept, out
):
    """Routed mixture prediction of rows in blocks ``block_start:block_stop``.

    One pass per row, nothing of size ``n_samples`` but ``out``: the router
    scores ``router @ x``, the top-k softmax gates, then for each routed
    expert only (gate non-zero) its neurons' projections ``t = w^T x`` and
    the Hermite recursion ``h_1(t) .. h_p(t)`` contracted with the
    second-layer coefficients:

        out[i] = sum_m pi_m(x) (intercept[m] + sum_j sum_p coef[m, j, p - 1] h_p(w_{m,j}^T x)).

    Each row's arithmetic depends on that row only, so the result does not
    depend on the block partition or the thread count.

    Parameters
    ----------
    block_start, block_stop, block_size : int
        Rows ``block_start * block_size`` to ``min(n, block_stop * block_size)``.
    X : ndarray of shape (n_samples, n_features)
        float32 or float64; the arithmetic runs in float64.
    router : ndarray of shape (n_experts, n_features)
    top_k : int
    W : ndarray of shape (n_experts, n_neurons, n_features)
    coef : ndarray of shape (n_experts, n_neurons, degree)
    intercept : ndarray of shape (n_experts,)
    out : ndarray of shape (n_samples,), float64
    """
    n, d = X.shape
    n_experts, n_neurons, degree = coef.shape
    top_k = min(top_k, n_experts)
    # Normalised Hermite recursion h_{i+1} = (t h_i - sqrt(i) h_{i-1}) / sqrt(i + 1)
    # with its constants tabulated once.
    inv_root = np.empty(degree + 1)
    ratio = np.empty(degree + 1)
    for i in range(degree + 1):
        inv_root[i] = 1.0 / np.sqrt(i + 1.0)
        ratio[i] = np.sqrt(i) * inv_root[i]
    scores = np.empty(n_experts)
    gates = np.empty(n_experts)
    chosen = np.empty(n_experts, dtype=np.bool_)
    xi = np.empty(d)
    for row in range(block_start * block_size, min(n, block_stop * block_size)):
        for a in range(d):
            xi[a] = X[row, a]
        for m in range(n_experts):
            s = 0.0
            for a in range(d):
                s += router[m, a] * xi[a]
            scores[m] = s
        _topk_gates_into(scores, top_k, gates, chosen)
        total = 0.0
        for m in range(n_experts):
            if gates[m] == 0.0:
                continue
            value = intercept[m]
            for j in range(n_neurons):
                t = 0.0
                for a in range(d):
                    t += W[m, j, a] * xi[a]
                prev = 1.0
                cur = t
                value += coef[m, j, 0] * cur
                for i in range(1, degree):
                    nxt = t * cur * inv_root[i] - ratio[i] * prev
                    prev = cur
                    cur = nxt
                    value += coef[m, j, i] * cur
            total += gates[m] * value
        out[row] = total
