"""Array-API backend of the Gaussian-gated MoE data passes (CuPy, PyTorch, ...).

Implements the contract of :mod:`skmoe.mixture._passes` with the same
arguments as :mod:`skmoe.mixture._passes_numba`: the data ``X``, ``Y`` live
in any array-API namespace (and device); parameters given as host NumPy
arrays (during EM: the float64 layout built from each M-step) are copied to
the data's device in the data's dtype, parameters already in the namespace
(the layout stored at fit) are used where they are, cast to the data's dtype
if it differs.  Computation is vectorised over rows
with one Python loop over components; the largest temporaries are
``(n_samples, dim)`` per component and ``(n_samples, n_components)``, never
``(n_samples, n_components, dim)``.

Scalar and parameter-sized results (log-likelihood, sufficient statistics)
come back to the host as NumPy float64, where the M-step runs; per-sample
results stay on the device, in the data's dtype.
"""

import math

import numpy as np

from ..utils._array_api import array_api_namespace, device, from_numpy, to_numpy

_LOG_2PI = math.log(2.0 * math.pi)


def _namespace_args(X, params, xp):
    """Namespace of ``X`` (``xp`` if given) and ``params`` next to ``X``, in ``X.dtype``."""
    if xp is None:
        xp = array_api_namespace(X)
    dev = device(X)

    def move(a):
        if isinstance(a, np.ndarray):
            return from_numpy(a, xp, dev, dtype=X.dtype)
        return a if a.dtype == X.dtype else xp.astype(a, X.dtype)

    return xp, tuple(move(a) for a in params)


def _log_normal(U, prec_chol, log_det, xp):
    """``log N`` of the rows of ``U`` (centred) for precision factor ``prec_chol``."""
    T = U @ prec_chol
    return log_det - 0.5 * U.shape[1] * _LOG_2PI - 0.5 * xp.sum(T * T, axis=1)


def _component_log_densities(X, Y, k, args, xp):
    """``log N(x | gate k)`` and ``log N(x | gate k) N(y | expert k)`` per row."""
    _, means, gate_prec_chol, gate_log_det, y_centers, coef, noise_prec_chol, noise_log_det = args
    U = X - means[k, :]
    log_gate = _log_normal(U, gate_prec_chol[k, ...], gate_log_det[k], xp)
    if Y.shape[1] == 0:
        return log_gate, log_gate
    residual = (Y - y_centers[k, :]) - U @ xp.matrix_transpose(coef[k, ...])
    return log_gate, log_gate + _log_normal(
        residual, noise_prec_chol[k, ...], noise_log_det[k], xp
    )


def _logsumexp_rows(A, xp):
    """Row-wise ``log sum exp``; rows of ``-inf`` give ``-inf``."""
    top = xp.max(A, axis=1, keepdims=True)
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    return top[:, 0] + xp.log(xp.sum(xp.exp(A - top), axis=1))


def _log_prob_matrices(X, Y, args, xp, need_gates):
    """``(n, K)`` matrices of ``log pi_k N(x|k) N(y|k)`` and, optionally, ``log pi_k N(x|k)``."""
    log_weights = args[0]
    joint, gates = [], []
    for k in range(log_weights.shape[0]):
        log_gate, log_joint = _component_log_densities(X, Y, k, args, xp)
        joint.append(log_joint + log_weights[k])
        if need_gates:
            gates.append(log_gate + log_weights[k])
    return xp.stack(joint, axis=1), (xp.stack(gates, axis=1) if need_gates else None)


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
    """Array-API version of :func:`skmoe.mixture._passes_numba.em_pass`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    Y : array of shape (n_samples, n_outputs)
    log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef, \
noise_prec_chol, noise_log_det : arrays
        The kernel layout (see :mod:`skmoe.mixture._passes`).
    with_moments : bool
        If False only the log-likelihood is computed.
    sample_weight : array of shape (n_samples,), default=None
        Non-negative row weights (host NumPy or in the namespace of ``X``);
        None is weight one for every row.
    xp : module, default=None
        Namespace of ``X``; looked up if None.

    Returns
    -------
    log_likelihood : float
    s0, s1, s2 : ndarray
        Host float64 arrays, moments about ``(means[k], y_centers[k])``.
    """
    params = (log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
              noise_prec_chol, noise_log_det)
    xp, args = _namespace_args(X, params, xp)
    log_prob, _ = _log_prob_matrices(X, Y, args, xp, need_gates=False)
    log_norm = _logsumexp_rows(log_prob, xp)
    resp = xp.exp(log_prob - log_norm[:, None]) if with_moments else None
    if sample_weight is not None:
        (weight,) = _namespace_args(X, (sample_weight,), xp)[1]
        # A row of weight zero adds exactly nothing (not 0 * -inf = NaN).
        log_norm = xp.where(weight > 0, weight * log_norm, xp.zeros_like(log_norm))
        if with_moments:
            resp = resp * weight[:, None]
    log_likelihood = float(to_numpy(xp.sum(xp.astype(log_norm, xp.float64))))
    if not with_moments:
        return log_likelihood, None, None, None
    Z = xp.concat([X, Y], axis=1)
    centers = xp.concat([args[1], args[4]], axis=1)
    s1, s2 = [], []
    for k in range(centers.shape[0]):
        U = Z - centers[k, :]
        weighted = resp[:, k : k + 1] * U
        s1.append(xp.sum(weighted, axis=0))
        s2.append(xp.matrix_transpose(weighted) @ U)
    s0 = to_numpy(xp.sum(resp, axis=0), dtype=float)
    s2 = to_numpy(xp.stack(s2), dtype=float)
    return log_likelihood, s0, to_numpy(xp.stack(s1), dtype=float), 0.5 * (
        s2 + s2.transpose(0, 2, 1)
    )


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
    """Array-API version of :func:`skmoe.mixture._passes_numba.log_densities`."""
    params = (log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
              noise_prec_chol, noise_log_det)
    xp, args = _namespace_args(X, params, xp)
    log_joint, log_gates = _log_prob_matrices(X, Y, args, xp, need_gates=True)
    return _logsumexp_rows(log_joint, xp), _logsumexp_rows(log_gates, xp)


def _gates(X, args, xp):
    log_weights, means, gate_prec_chol, gate_log_det = args[:4]
    log_gates = xp.stack(
        [
            log_weights[k] + _log_normal(X - means[k, :], gate_prec_chol[k, ...], gate_log_det[k], xp)
            for k in range(means.shape[0])
        ],
        axis=1,
    )
    return xp.exp(log_gates - _logsumexp_rows(log_gates, xp)[:, None])


def gate_probabilities(X, log_weights, means, gate_prec_chol, gate_log_det, *, xp=None):
    """Array-API version of :func:`skmoe.mixture._passes_numba.gate_probabilities`."""
    params = (log_weights, means, gate_prec_chol, gate_log_det)
    xp, args = _namespace_args(X, params, xp)
    return _gates(X, args, xp)


def predictive_moments(
    X, log_weights, means, gate_prec_chol, gate_log_det, coef, intercept, noise_var, *, xp=None
):
    """Array-API version of :func:`skmoe.mixture._passes_numba.predictive_moments`."""
    params = (log_weights, means, gate_prec_chol, gate_log_det, coef, intercept, noise_var)
    xp, args = _namespace_args(X, params, xp)
    gates = _gates(X, args, xp)
    coef, intercept, noise_var = args[4:]
    mean = xp.zeros((X.shape[0], coef.shape[1]), dtype=X.dtype, device=device(X))
    second_moment = xp.zeros_like(mean)
    for k in range(coef.shape[0]):
        expert_mean = X @ xp.matrix_transpose(coef[k, ...]) + intercept[k, :]
        g = gates[:, k : k + 1]
        mean = mean + g * expert_mean
        second_moment = second_moment + g * (expert_mean * expert_mean + noise_var[k, :])
    return mean, xp.clip(second_moment - mean * mean, 0.0, None)
