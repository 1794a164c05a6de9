"""The Dask path of :class:`~skmoe.inspection.DiagonalFisherEstimator`.

Every statistic of the estimator is a sum over rows, so a Dask fit is the
NumPy fit split over the row chunks: each chunk runs
:func:`~skmoe.inspection._fisher_statistics.accumulate_statistics` on its
worker, the per-chunk sums are added up the fixed tree of
:func:`skmoe.utils._dask.reduce_row_blocks`, and the client normalises them.

The labels are counter-based (a function of the seed and of the global index
of a row's virtual copy, see
:func:`~skmoe.inspection._fisher_statistics.virtual_copies`), so each chunk
only needs the index of its first copy: with that, the Dask fit draws exactly
the labels of the NumPy fit, and the two agree to rounding whatever the
chunking.

This module imports Dask; it is imported only once ``X`` is a Dask array.
"""

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state

from ..utils._dask import align_row_blocks, is_dask_array, reduce_row_blocks
from ..utils._validation import draw_seed
from ._fisher_statistics import accumulate_statistics, finalize_statistics, statistic_names


def check_inputs(X, y, sample_weight):
    """Check the shapes and dtypes of Dask inputs without computing them.

    Values (finiteness, signs) are checked chunk by chunk, where they are
    read.

    Returns
    -------
    X, y, sample_weight : dask.array.Array or None
        Chunked along rows only, with ``X``'s row chunks.
    """
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array X, got {X.ndim} dimension(s).")
    if any(np.isnan(size) for size in X.shape):
        raise ValueError(
            "X has unknown chunk sizes; call X.compute_chunk_sizes() before fit."
        )
    if X.shape[0] < 1:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"X must be a numeric dask array, got dtype {X.dtype}.")
    if sample_weight is not None:
        if np.ndim(sample_weight) != 1:
            raise ValueError(
                f"sample_weight must be 1D, got shape {np.shape(sample_weight)}."
            )
        if not is_dask_array(sample_weight):
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
    X, y, sample_weight = align_row_blocks(X, y, sample_weight)
    return X, y, sample_weight


def _check_block(X_block, weight_block):
    """Finite ``X`` and finite, non-negative weights in one chunk (on its worker)."""
    if not np.all(np.isfinite(X_block)):
        raise ValueError("Input X contains NaN or infinity.")
    if weight_block is not None:
        if not np.all(np.isfinite(weight_block)):
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if np.any(weight_block < 0):
            raise ValueError("Negative values in data passed to `sample_weight`")


def _block_weights(X_block, weight_block):
    weights = (np.ones(X_block.shape[0]) if weight_block is None
               else np.asarray(weight_block, dtype=np.float64))
    return weights


def _copy_offsets(X, sample_weight):
    """Global index of the first virtual copy of each row chunk, and the total weight."""
    if sample_weight is None:
        sizes = np.asarray(X.chunks[0], dtype=np.float64)
        totals = sizes
    else:
        def chunk_sums(weight_block):
            _check_block(np.zeros(0), weight_block)
            w = np.asarray(weight_block, dtype=np.float64)
            return np.array([[np.ceil(w).sum(), w.sum()]])

        sums = sample_weight.map_blocks(
            chunk_sums, chunks=((1,) * sample_weight.numblocks[0], (2,)), new_axis=1,
            dtype=np.float64, meta=np.empty((0, 0)),
        ).compute()
        sizes, totals = sums[:, 0], sums[:, 1]
    if not totals.sum() > 0:
        raise ValueError("sample_weight sums to zero: there is no row to use.")
    offsets = np.concatenate([[0.0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return offsets


def fisher_statistics_dask(net, X, *, sample_weight=None, inv_sigma2=1.0, n_draws=1,
                           random_state=None, estimators=("exact", "score", "hessian"),
                           with_variances=True, batch_size=None):
    """:func:`~skmoe.inspection._fisher_statistics.fisher_statistics` for Dask inputs.

    Parameters are those of ``fisher_statistics``, with ``X`` (and
    ``sample_weight``, if not None) Dask arrays of the same row chunks, as
    returned by :func:`check_inputs`.  Returns the same dictionary of NumPy
    arrays.
    """
    seed = draw_seed(check_random_state(random_state))
    names2, names4, implied = statistic_names(net, set(estimators), with_variances)
    offsets = da.from_array(_copy_offsets(X, sample_weight), chunks=1)

    def block_statistics(X_block, weight_block, offset_block):
        _check_block(X_block, weight_block)
        X_block = np.ascontiguousarray(X_block, dtype=np.float64)
        return accumulate_statistics(
            net, X_block, _block_weights(X_block, weight_block), int(offset_block[0]),
            seed=seed, names2=names2, names4=names4, inv_sigma2=inv_sigma2,
            n_draws=n_draws, batch_size=batch_size,
        )

    sums = reduce_row_blocks(block_statistics, X, sample_weight, offsets)
    return finalize_statistics(net, sums, names2, names4, implied, n_draws)


def residual_sums_dask(net, X, y, sample_weight):
    """Weighted residual sum of squares of the model on ``(X, y)`` and the total weight."""
    (X, y, sample_weight) = align_row_blocks(X, y, sample_weight)
    if y.ndim > 2:
        raise ValueError(f"y must be 1D or 2D, got {y.ndim} dimensions.")

    def block_sums(X_block, y_block, weight_block):
        _check_block(X_block, weight_block)
        y_block = np.asarray(y_block, dtype=np.float64).reshape(X_block.shape[0], -1)
        if not np.all(np.isfinite(y_block)):
            raise ValueError("Input y contains NaN or infinity.")
        if y_block.shape[1] != net.n_outputs:
            raise ValueError(
                f"y has {y_block.shape[1]} outputs, the model has {net.n_outputs}."
            )
        X_block = np.ascontiguousarray(X_block, dtype=np.float64)
        squares = ((y_block - net.predict_natural(X_block)) ** 2).sum(axis=1)
        weights = _block_weights(X_block, weight_block)
        return float(weights @ squares), float(weights.sum())

    rss, total_weight = reduce_row_blocks(block_sums, X, y, sample_weight)
    return rss, total_weight
