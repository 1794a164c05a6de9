"""Dask backend of the Gaussian-gated MoE data passes (``dask.array`` inputs).

Implements the contract of :mod:`skmoe.mixture._passes` for ``X`` and ``Y``
given as :class:`dask.array.Array` chunked along rows (with the same row
chunks, see :func:`skmoe.utils._dask.align_row_blocks`).  Every row block is
handed to the numba backend (:mod:`skmoe.mixture._passes_numba`) on a worker:

- :func:`em_pass` reduces each block to its sufficient statistics, adds them
  up a fixed tree (:func:`skmoe.utils._dask.reduce_row_blocks`, so the sum
  does not depend on the scheduler or on the order in which blocks finish)
  and returns them to the client, where the M-step runs on ``K`` small
  matrices.  This is the Spark MLlib design: exact, and the traffic per
  iteration is the statistics, not the data.
- the per-sample passes return *lazy* Dask arrays with the row chunks of
  ``X`` (``map_blocks`` with an explicit ``meta``); nothing is computed until
  the caller asks.

Parameters are host NumPy arrays; each task carries a copy (a few kB).
Memory per worker is that of one row block plus the numba pass's buffers.
"""

from functools import partial

import numpy as np

from ..utils._dask import map_row_blocks, reduce_row_blocks
from . import _passes_numba


def _block_em(X, Y, sample_weight, params, with_moments):
    """The numba ``em_pass`` on one row block (runs on a worker)."""
    return _passes_numba.em_pass(
        np.ascontiguousarray(X), np.ascontiguousarray(Y), *params, with_moments,
        sample_weight=sample_weight,
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
    """Dask version of :func:`skmoe.mixture._passes_numba.em_pass`.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    Y : dask.array.Array of shape (n_samples, n_outputs)
        Same row chunks as ``X``.
    log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef, \
noise_prec_chol, noise_log_det : ndarray
        The kernel layout (see :mod:`skmoe.mixture._passes`).
    with_moments : bool
        If False only the log-likelihood is computed.
    sample_weight : dask.array.Array of shape (n_samples,), default=None
        Row weights with the row chunks of ``X``.
    xp : None, default=None
        Unused (the namespace of Dask inputs is handled here).

    Returns
    -------
    log_likelihood : float
    s0, s1, s2 : ndarray
        Host float64 sums over all blocks.
    """
    params = (log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
              noise_prec_chol, noise_log_det)
    block = partial(_block_em, params=params, with_moments=with_moments)
    log_likelihood, s0, s1, s2 = reduce_row_blocks(block, X, Y, sample_weight)
    return float(log_likelihood), s0, s1, s2


def _block_log_densities(X, Y, params):
    log_joint, log_marginal_x = _passes_numba.log_densities(
        np.ascontiguousarray(X), np.ascontiguousarray(Y), *params
    )
    return np.column_stack([log_joint, log_marginal_x])


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
    """Lazy Dask version of :func:`skmoe.mixture._passes_numba.log_densities`.

    ``Y`` may be a NumPy array with zero columns (then both outputs are
    ``log p(x)``).
    """
    import dask.array as da

    params = (log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
              noise_prec_chol, noise_log_det)
    if not isinstance(Y, da.Array):
        Y = da.zeros((X.shape[0], 0), dtype=X.dtype, chunks=(X.chunks[0], (0,)))
    both = da.map_blocks(
        _block_log_densities, X, Y, params=params, dtype=np.float64,
        chunks=(X.chunks[0], (2,)), meta=np.empty((0, 0)),
    )
    return both[:, 0], both[:, 1]


def gate_probabilities(X, log_weights, means, gate_prec_chol, gate_log_det, *, xp=None):
    """Lazy Dask version of :func:`skmoe.mixture._passes_numba.gate_probabilities`."""
    params = (log_weights, means, gate_prec_chol, gate_log_det)

    def block(X_block):
        return _passes_numba.gate_probabilities(np.ascontiguousarray(X_block), *params)

    return map_row_blocks(block, X, n_columns=means.shape[0])


def predictive_moments(
    X, log_weights, means, gate_prec_chol, gate_log_det, coef, intercept, noise_var, *, xp=None
):
    """Lazy Dask version of :func:`skmoe.mixture._passes_numba.predictive_moments`.

    Mean and variance come from one pass per block (one lazy array of
    ``2 * n_outputs`` columns, sliced).
    """
    params = (log_weights, means, gate_prec_chol, gate_log_det, coef, intercept, noise_var)
    n_outputs = coef.shape[1]

    def block(X_block):
        return np.hstack(
            _passes_numba.predictive_moments(np.ascontiguousarray(X_block), *params)
        )

    both = map_row_blocks(block, X, n_columns=2 * n_outputs)
    return both[:, :n_outputs], both[:, n_outputs:]
