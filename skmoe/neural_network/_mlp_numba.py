"""Numba kernels for small (P)ReLU MLPs: forward, backward, Adam, grouped inference.

Parameter layout
----------------
One network's parameters are a flat float64 vector.  With layer sizes
``sizes = (n_in, h_1, ..., h_J, n_out)`` (``J`` hidden layers), layer
``l = 0..J`` maps ``sizes[l]`` units to ``sizes[l + 1]`` units; its weight
matrix ``W_l`` of shape ``(sizes[l + 1], sizes[l])`` is stored row-major at
``w_off[l]`` and its bias at ``b_off[l]``.  The PReLU slopes of hidden layer
``l = 0..J-1`` (one per unit) follow at ``s_off[l]``.  The hidden activation
is ``PReLU_a(z) = z`` for ``z > 0`` and ``a z`` otherwise; ReLU is ``a = 0``.
The offsets come from :func:`layer_offsets`.

Activations are held transposed, ``(units, rows)``: layer ``l``'s units are
rows ``u_off[l]:u_off[l + 1]`` of a buffer of shape ``(sum(sizes), n_rows)``.
Every inner loop then runs over contiguous rows (an axpy over a chunk of
rows), which LLVM vectorises, and each row's arithmetic is the same whatever
the other rows of the chunk are.

Losses (``loss_kind``): 0 is half the squared error, 1 the binary
cross-entropy of a sigmoid output, 2 the multinomial cross-entropy of a
softmax output.  All are weighted averages over the rows of the batch (row
``r`` counts ``w_r`` times, ``B = sum_r w_r``; every weight is one when the
fit has no ``sample_weight``), and the L2 penalty
``alpha / (2 B) * sum(W ** 2)`` (weights only, not biases nor slopes) is
added, as in scikit-learn's ``MLPRegressor`` with ``sample_weight``.  An
integer weight is then exactly a repeated row of the batch.
"""

import numpy as np
from numba import njit

from ..utils._numba_math import logsumexp, stable_sigmoid

# Rows per forward chunk at predict time.
_CHUNK = 64

# PReLU slopes are projected onto [0, _SLOPE_MAX] after every Adam step.
SLOPE_MAX = 1.0 - 1e-3

_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


def layer_offsets(sizes, prelu):
    """Offsets of weights, biases, slopes and activation rows.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_in, h_1, ..., h_J, n_out)``.
    prelu : bool
        Whether the parameter vector holds PReLU slopes.

    Returns
    -------
    w_off, b_off : ndarray of shape (J + 1,)
    s_off : ndarray of shape (J + 1,)
        ``s_off[l]`` for hidden layer ``l``; the last entry is the total size.
    u_off : ndarray of shape (J + 3,)
        Row offsets of each layer's units in an activation buffer.
    n_params : int
    """
    sizes = [int(s) for s in sizes]
    n_layers = len(sizes) - 1
    w_off = np.zeros(n_layers, dtype=np.int64)
    b_off = np.zeros(n_layers, dtype=np.int64)
    pos = 0
    for layer in range(n_layers):
        w_off[layer] = pos
        pos += sizes[layer] * sizes[layer + 1]
        b_off[layer] = pos
        pos += sizes[layer + 1]
    s_off = np.zeros(n_layers, dtype=np.int64)
    for layer in range(n_layers - 1):
        s_off[layer] = pos
        if prelu:
            pos += sizes[layer + 1]
    s_off[n_layers - 1] = pos
    u_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return w_off, b_off, s_off, u_off, pos


# --------------------------------------------------------------------------
# Forward and backward on a transposed batch
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _dense(params, w_o, b_o, n_in, n_out, A, in_row, out_row, n_rows):
    """``A[out_row + o, :n] = b[o] + sum_i W[o, i] A[in_row + i, :n]``."""
    for o in range(n_out):
        b = params[b_o + o]
        for r in range(n_rows):
            A[out_row + o, r] = b
        base = w_o + o * n_in
        for i in range(n_in):
            w = params[base + i]
            for r in range(n_rows):
                A[out_row + o, r] += w * A[in_row + i, r]


@njit(cache=True, nogil=True)
def forward(params, sizes, w_off, b_off, s_off, u_off, prelu, A, Z, n_rows):
    """Forward pass; inputs already in ``A[:sizes[0], :n_rows]``.

    ``Z`` receives the hidden pre-activations (same layout as ``A``); the
    output layer is linear (the link is applied by the loss).
    """
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        row_in = u_off[layer]
        row_out = u_off[layer + 1]
        _dense(params, w_off[layer], b_off[layer], n_in, n_out, A, row_in, row_out, n_rows)
        if layer < n_layers - 1:
            for o in range(n_out):
                slope = params[s_off[layer] + o] if prelu else 0.0
                for r in range(n_rows):
                    z = A[row_out + o, r]
                    Z[row_out + o, r] = z
                    if z <= 0.0:
                        A[row_out + o, r] = slope * z


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _dense4x4(params, w_o, b_o, n_in, n_out, A, in_row, out_row, n_rows):
    """``_dense`` over 4 outputs x 4 inputs per pass over the rows (inference).

    Each load and store of an output row then carries four multiply-adds
    instead of one, which halves the time of a 32 x 32 layer (the stores, not
    the arithmetic, bound a one-input-per-pass loop).  Inputs left over when
    ``n_in`` is not a multiple of 4 (all of them for the 2-D inputs of the
    first layer) take one input per pass; left-over outputs one output.
    """
    for o in range(0, n_out, 4):
        n_o = min(4, n_out - o)
        for k in range(n_o):
            bias = params[b_o + o + k]
            for r in range(n_rows):
                A[out_row + o + k, r] = bias
        if n_o < 4:
            for k in range(n_o):
                base = w_o + (o + k) * n_in
                for i in range(n_in):
                    w = params[base + i]
                    for r in range(n_rows):
                        A[out_row + o + k, r] += w * A[in_row + i, r]
            continue
        b0 = w_o + o * n_in
        b1 = b0 + n_in
        b2 = b1 + n_in
        b3 = b2 + n_in
        i = 0
        while i + 4 <= n_in:
            w00, w01, w02, w03 = params[b0 + i], params[b0 + i + 1], params[b0 + i + 2], params[b0 + i + 3]
            w10, w11, w12, w13 = params[b1 + i], params[b1 + i + 1], params[b1 + i + 2], params[b1 + i + 3]
            w20, w21, w22, w23 = params[b2 + i], params[b2 + i + 1], params[b2 + i + 2], params[b2 + i + 3]
            w30, w31, w32, w33 = params[b3 + i], params[b3 + i + 1], params[b3 + i + 2], params[b3 + i + 3]
            for r in range(n_rows):
                a0 = A[in_row + i, r]
                a1 = A[in_row + i + 1, r]
                a2 = A[in_row + i + 2, r]
                a3 = A[in_row + i + 3, r]
                A[out_row + o, r] += w00 * a0 + w01 * a1 + w02 * a2 + w03 * a3
                A[out_row + o + 1, r] += w10 * a0 + w11 * a1 + w12 * a2 + w13 * a3
                A[out_row + o + 2, r] += w20 * a0 + w21 * a1 + w22 * a2 + w23 * a3
                A[out_row + o + 3, r] += w30 * a0 + w31 * a1 + w32 * a2 + w33 * a3
            i += 4
        while i < n_in:
            w0, w1, w2, w3 = params[b0 + i], params[b1 + i], params[b2 + i], params[b3 + i]
            for r in range(n_rows):
                a = A[in_row + i, r]
                A[out_row + o, r] += w0 * a
                A[out_row + o + 1, r] += w1 * a
                A[out_row + o + 2, r] += w2 * a
                A[out_row + o + 3, r] += w3 * a
            i += 1


@njit(cache=True, nogil=True)
def forward_inference(params, sizes, w_off, b_off, s_off, u_off, prelu, A, n_rows):
    """Forward pass without keeping pre-activations (same values as ``forward``)."""
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers):
        n_out = sizes[layer + 1]
        row_out = u_off[layer + 1]
        w_o = w_off[layer]
        b_o = b_off[layer]
        _dense4x4(params, w_o, b_o, sizes[layer], n_out, A, u_off[layer], row_out, n_rows)
        if layer < n_layers - 1:
            for o in range(n_out):
                slope = params[s_off[layer] + o] if prelu else 0.0
                for r in range(n_rows):
                    z = A[row_out + o, r]
                    if z <= 0.0:
                        A[row_out + o, r] = slope * z


@njit(cache=True, nogil=True)
def _output_delta(A, out_row, n_out, Yt, wt, n_rows, loss_kind, D):
    """Weighted loss summed over rows and ``D[:n_out] = dLoss/dz_out`` (not yet averaged).

    Row ``r`` counts ``wt[r]`` times in both.
    """
    loss = 0.0
    if loss_kind == 0:
        for o in range(n_out):
            for r in range(n_rows):
                d = A[out_row + o, r] - Yt[o, r]
                D[o, r] = wt[r] * d
                loss += 0.5 * wt[r] * d * d
    elif loss_kind == 1:
        for r in range(n_rows):
            z = A[out_row, r]
            y = Yt[0, r]
            # log(1 + exp(-|z|)) + max(z, 0) - y z
            loss += wt[r] * (np.log1p(np.exp(-abs(z))) + max(z, 0.0) - y * z)
            D[0, r] = wt[r] * (stable_sigmoid(z) - y)
    else:
        for r in range(n_rows):
            log_norm = logsumexp(A[out_row : out_row + n_out, r])
            row_loss = 0.0
            for o in range(n_out):
                logp = A[out_row + o, r] - log_norm
                D[o, r] = wt[r] * (np.exp(logp) - Yt[o, r])
                row_loss -= Yt[o, r] * logp
            loss += wt[r] * row_loss
    return loss


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def loss_grad(
    params,
    sizes,
    w_off,
    b_off,
    s_off,
    u_off,
    prelu,
    loss_kind,
    alpha,
    Yt,
    wt,
    n_rows,
    A,
    Z,
    D,
    Dp,
    grad,
):
    """Weighted mean loss of a batch and its gradient (into ``grad``).

    Inputs are in ``A[:sizes[0], :n_rows]``, targets in ``Yt[:, :n_rows]``
    (transposed; one-hot for the softmax loss) and the rows' positive
    weights in ``wt[:n_rows]``.  ``D`` and ``Dp`` are
    ``(max(sizes), >= n_rows)`` work buffers.  The slope gradients are
    computed whenever ``prelu`` is true.
    """
    forward(params, sizes, w_off, b_off, s_off, u_off, prelu, A, Z, n_rows)
    n_layers = sizes.shape[0] - 1
    n_out = sizes[n_layers]
    loss = _output_delta(A, u_off[n_layers], n_out, Yt, wt, n_rows, loss_kind, D)
    total_weight = 0.0
    for r in range(n_rows):
        total_weight += wt[r]
    scale = 1.0 / total_weight
    for j in range(grad.shape[0]):
        grad[j] = 0.0
    penalty = 0.0
    for layer in range(n_layers - 1, -1, -1):
        n_in = sizes[layer]
        n_o = sizes[layer + 1]
        row_in = u_off[layer]
        w_o = w_off[layer]
        b_o = b_off[layer]
        # D holds dLoss/dz for this layer's outputs (summed loss).
        for o in range(n_o):
            gb = 0.0
            for r in range(n_rows):
                gb += D[o, r]
            grad[b_o + o] = gb * scale
            base = w_o + o * n_in
            for i in range(n_in):
                g = 0.0
                for r in range(n_rows):
                    g += D[o, r] * A[row_in + i, r]
                w = params[base + i]
                grad[base + i] = g * scale + alpha * w * scale
                penalty += w * w
        if layer == 0:
            break
        # Back through W: Dp[i] = sum_o W[o, i] D[o]
        for i in range(n_in):
            for r in range(n_rows):
                Dp[i, r] = 0.0
        for o in range(n_o):
            base = w_o + o * n_in
            for i in range(n_in):
                w = params[base + i]
                for r in range(n_rows):
                    Dp[i, r] += w * D[o, r]
        # Back through the activation of hidden layer ``layer - 1``.
        s_o = s_off[layer - 1]
        for i in range(n_in):
            slope = params[s_o + i] if prelu else 0.0
            gs = 0.0
            for r in range(n_rows):
                z = Z[row_in + i, r]
                if z > 0.0:
                    D[i, r] = Dp[i, r]
                else:
                    gs += Dp[i, r] * z
                    D[i, r] = slope * Dp[i, r]
            if prelu:
                grad[s_o + i] = gs * scale
    return (loss + 0.5 * alpha * penalty) * scale


# --------------------------------------------------------------------------
# Adam and the mini-batch epoch
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def adam_step(params, grad, m, v, t, lr, beta1, beta2, eps):
    """One Adam update of step number ``t`` (>= 1), in place.

    Same update as scikit-learn's ``AdamOptimizer``: the bias corrections are
    folded into the step size ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)``.
    """
    lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    for j in range(params.shape[0]):
        g = grad[j]
        m[j] = beta1 * m[j] + (1.0 - beta1) * g
        v[j] = beta2 * v[j] + (1.0 - beta2) * g * g
        params[j] -= lr_t * m[j] / (np.sqrt(v[j]) + eps)


@njit(cache=True, nogil=True)
def _work_buffers(params, sizes, u_off, n_outputs, n_rows):
    """``(A, Z, D, Dp, Yt, wt, grad)``: the work buffers of :func:`loss_grad` for ``n_rows`` rows."""
    width = 0
    for s in sizes:
        width = max(width, s)
    A = np.empty((u_off[-1], n_rows))
    Z = np.empty((u_off[-1], n_rows))
    D = np.empty((width, n_rows))
    Dp = np.empty((width, n_rows))
    Yt = np.empty((n_outputs, n_rows))
    return A, Z, D, Dp, Yt, np.empty(n_rows), np.empty_like(params)


@njit(cache=True, nogil=True)
def _load_rows(X, Y, weights, perm, start, stop, A, Yt, wt):
    """Rows ``perm[start:stop]`` of ``X``, ``Y`` and ``weights`` into ``A``, ``Yt``, ``wt``.

    ``X`` and ``Y`` are transposed into ``A`` and ``Yt``.  Returns the total
    weight of the rows.
    """
    total = 0.0
    for r in range(stop - start):
        row = perm[start + r]
        for a in range(X.shape[1]):
            A[a, r] = X[row, a]
        for a in range(Y.shape[1]):
            Yt[a, r] = Y[row, a]
        wt[r] = weights[row]
        total += weights[row]
    return total


@njit(cache=True, nogil=True)
def train_epoch(
    params,
    m,
    v,
    t,
    X,
    Y,
    weights,
    perm,
    batch_size,
    sizes,
    w_off,
    b_off,
    s_off,
    u_off,
    prelu,
    loss_kind,
    alpha,
    lr,
    beta1,
    beta2,
    eps,
):
    """One epoch of mini-batch Adam over the rows in the order ``perm``.

    ``weights`` holds each row's positive weight (ones without
    ``sample_weight``).  Returns the mean training loss over the epoch (each
    batch's mean loss weighted by its total weight, i.e. by its size without
    ``sample_weight``, as in scikit-learn) and the new step count.
    """
    n = perm.shape[0]
    B = min(batch_size, n)
    A, Z, D, Dp, Yt, wt, grad = _work_buffers(params, sizes, u_off, Y.shape[1], B)
    n_layers = sizes.shape[0] - 1
    total = 0.0
    total_weight = 0.0
    for start in range(0, n, B):
        stop = min(start + B, n)
        nb = stop - start
        batch_weight = _load_rows(X, Y, weights, perm, start, stop, A, Yt, wt)
        batch_loss = loss_grad(
            params, sizes, w_off, b_off, s_off, u_off, prelu, loss_kind, alpha, Yt, wt, nb,
            A, Z, D, Dp, grad,
        )
        total += batch_loss * batch_weight
        total_weight += batch_weight
        t += 1
        adam_step(params, grad, m, v, t, lr, beta1, beta2, eps)
        if prelu:
            for j in range(s_off[0], s_off[n_layers - 1]):
                params[j] = min(max(params[j], 0.0), SLOPE_MAX)
    return total / total_weight, t


@njit(cache=True, nogil=True)
def mean_loss(params, X, Y, weights, sizes, w_off, b_off, s_off, u_off, prelu, loss_kind, alpha):
    """Weighted mean loss (with the L2 penalty) of the whole of ``(X, Y)``, and its gradient."""
    n = X.shape[0]
    A, Z, D, Dp, Yt, wt, grad = _work_buffers(params, sizes, u_off, Y.shape[1], n)
    perm = np.arange(n)
    _load_rows(X, Y, weights, perm, 0, n, A, Yt, wt)
    loss = loss_grad(
        params, sizes, w_off, b_off, s_off, u_off, prelu, loss_kind, alpha, Yt, wt, n, A, Z,
        D, Dp, grad,
    )
    return loss, grad


# --------------------------------------------------------------------------
# Grouped inference
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def predict_grouped_blocks(
    expert_start,
    expert_stop,
    X,
    order,
    offsets,
    params_all,
    is_mlp,
    sizes,
    w_off,
    b_off,
    s_off,
    u_off,
    prelu,
    out,
):
    """Raw outputs of experts ``expert_start:expert_stop`` on their own rows only.

    Expert ``e`` evaluates rows ``order[offsets[e]:offsets[e + 1]]`` in chunks
    of ``_CHUNK`` rows and writes ``out[row]``; experts with ``is_mlp[e]``
    false are skipped (constant models are filled by the caller).  The
    arithmetic runs in ``out``'s dtype (float32 for a float32 model on
    float32 inputs).
    """
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    n_out = sizes[n_layers]
    out_row = u_off[n_layers]
    A = np.empty((u_off[-1], _CHUNK), out.dtype)
    for e in range(expert_start, expert_stop):
        if not is_mlp[e]:
            continue
        params = params_all[e]
        for start in range(offsets[e], offsets[e + 1], _CHUNK):
            stop = min(start + _CHUNK, offsets[e + 1])
            nb = stop - start
            for r in range(nb):
                row = order[start + r]
                for a in range(n_in):
                    A[a, r] = X[row, a]
            forward_inference(params, sizes, w_off, b_off, s_off, u_off, prelu, A, nb)
            for r in range(nb):
                row = order[start + r]
                for o in range(n_out):
                    out[row, o] = A[out_row + o, r]
