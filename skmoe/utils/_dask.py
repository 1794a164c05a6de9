"""Dask arrays: detection, row-block reductions, lazy row-block maps, row samples.

Estimators that accept :class:`dask.array.Array` inputs use these functions
and nothing else from Dask, so that Dask stays an optional dependency: it is
imported only once an input already is a Dask array (the ``dask`` extra,
``pip install 'skmoe[dask]'``).

The pattern is the one of Spark MLlib's mixture models: each row block is
reduced on its worker to a few small statistics (sums), the statistics are
added up a fixed tree, and whatever needs the sum (an M-step) runs on the
client.  The tree is a function of the number of blocks only, so a sum is
bit-for-bit reproducible whatever the scheduler, the number of workers or the
order in which the blocks finish.

Every function takes arrays chunked along rows; the columns are brought into
one chunk first (:func:`align_row_blocks`), as a row block is the unit the
kernels work on.
"""

import sys

import numpy as np


def is_dask_array(X):
    """Whether ``X`` is a :class:`dask.array.Array`.

    Never imports Dask: an object can only be a Dask array if ``dask.array``
    has been imported already.

    Parameters
    ----------
    X : object

    Returns
    -------
    bool
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def align_row_blocks(X, *others):
    """``X`` and ``others`` chunked along rows only, with ``X``'s row chunks.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, ...)
        The array whose row chunks every other array follows.
    *others : dask.array.Array or array-like or None
        Arrays with ``n_samples`` rows (NumPy arrays are wrapped with ``X``'s
        row chunks), or None (passed through).

    Returns
    -------
    arrays : tuple of dask.array.Array or None
        ``(X, *others)``, each with a single chunk along every axis but the
        first.

    Raises
    ------
    ValueError
        If an array has a different number of rows.
    """
    import dask.array as da

    def single_column_chunk(a):
        return a.rechunk({axis: -1 for axis in range(1, a.ndim)}) if a.ndim > 1 else a

    X = single_column_chunk(X)
    aligned = [X]
    for other in others:
        if other is None:
            aligned.append(None)
            continue
        if not is_dask_array(other):
            other = np.asarray(other)
        if other.shape[0] != X.shape[0]:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{X.shape[0]}, {other.shape[0]}]."
            )
        if not is_dask_array(other):
            other = da.from_array(other, chunks=(X.chunks[0],) + _whole_chunks(other))
        other = single_column_chunk(other)
        if other.chunks[0] != X.chunks[0]:
            other = other.rechunk({0: X.chunks[0]})
        aligned.append(other)
    return tuple(aligned)


def _whole_chunks(a):
    """Chunks of the non-row axes of ``a`` as one chunk each."""
    return tuple((size,) for size in np.shape(a)[1:])


def _row_blocks(a):
    """The row blocks of a row-chunked Dask array, as a list of delayed objects."""
    return list(a.to_delayed().reshape(-1)) if a is not None else None


def add_statistics(*parts):
    """Element-wise sum of tuples of statistics, in the order given.

    Parameters
    ----------
    *parts : tuple
        Equal-length tuples whose entries are NumPy arrays, Python or NumPy
        scalars, or None (the entry is None in every part).

    Returns
    -------
    total : tuple
    """
    first = parts[0]
    total = []
    for position in range(len(first)):
        entries = [part[position] for part in parts]
        if entries[0] is None:
            total.append(None)
            continue
        value = entries[0] + 0  # a copy: never add into a block's own result
        for entry in entries[1:]:
            value = value + entry
        total.append(value)
    return tuple(total)


def reduce_row_blocks(block_statistics, *arrays, split_every=8):
    """Sum of ``block_statistics`` over the row blocks, added up a fixed tree.

    Parameters
    ----------
    block_statistics : callable
        ``block_statistics(*blocks) -> tuple`` of NumPy arrays or scalars
        (or None entries), called on the matching NumPy row blocks of
        ``arrays``, on the workers.  It must not modify its inputs.
    *arrays : dask.array.Array or None
        Arrays with the same row chunks (see :func:`align_row_blocks`); a
        None argument is passed as None to every call.
    split_every : int, default=8
        Fan-in of the summation tree.

    Returns
    -------
    total : tuple
        The entry-wise sums (:func:`add_statistics`), computed with the
        current Dask scheduler (a ``distributed.Client`` if one is active).
    """
    import dask

    present = [a for a in arrays if a is not None]
    n_blocks = present[0].numblocks[0]
    blocks = [_row_blocks(a) if a is not None else [None] * n_blocks for a in arrays]
    parts = [dask.delayed(block_statistics)(*row) for row in zip(*blocks)]
    while len(parts) > 1:
        parts = [
            dask.delayed(add_statistics)(*parts[start : start + split_every])
            for start in range(0, len(parts), split_every)
        ]
    (total,) = dask.compute(parts[0])
    return total


def map_row_blocks(block_function, X, *, n_columns=None, dtype=np.float64):
    """Lazy Dask array of ``block_function`` applied to each row block of ``X``.

    Parameters
    ----------
    block_function : callable
        ``block_function(X_block) -> ndarray`` of shape
        ``(n_block_rows, n_columns)``, or ``(n_block_rows,)`` if
        ``n_columns`` is None.
    X : dask.array.Array of shape (n_samples, n_features)
        Row-chunked input (see :func:`align_row_blocks`).
    n_columns : int or None, default=None
        Number of output columns; None for a 1-D output.
    dtype : dtype, default=np.float64
        Dtype of the output.

    Returns
    -------
    result : dask.array.Array
        Of shape ``(n_samples, n_columns)`` or ``(n_samples,)``, with ``X``'s
        row chunks; nothing is computed.
    """
    # An explicit ``meta`` keeps Dask from calling ``block_function`` on an
    # empty block to guess the output type.
    if n_columns is None:
        meta = np.empty((0,), dtype=dtype)
        return X.map_blocks(
            block_function, dtype=dtype, drop_axis=1, chunks=(X.chunks[0],), meta=meta
        )
    meta = np.empty((0, 0), dtype=dtype)
    return X.map_blocks(
        block_function, dtype=dtype, chunks=(X.chunks[0], (n_columns,)), meta=meta
    )


def sample_rows(arrays, n_max, random_state):
    """A uniform random sample of at most ``n_max`` rows, as NumPy arrays.

    Only the sampled rows are computed (and held in memory), so the cost is
    bounded by ``n_max`` rows whatever the size of the arrays.

    Parameters
    ----------
    arrays : sequence of dask.array.Array or None
        Arrays with the same number of rows; None entries stay None.
    n_max : int
        Largest sample size; all rows (in order) if there are fewer.
    random_state : numpy.random.RandomState

    Returns
    -------
    sample : tuple of ndarray or None
        The same rows of every array, in increasing row order.
    indices : ndarray of int
        The sampled row indices (sorted).
    """
    import dask

    n_samples = next(a for a in arrays if a is not None).shape[0]
    if n_samples <= n_max:
        indices = np.arange(n_samples)
    else:
        indices = np.sort(random_state.choice(n_samples, size=n_max, replace=False))
    selected = [a[indices] if a is not None else None for a in arrays]
    computed = dask.compute(*[a for a in selected if a is not None])
    computed = iter(computed)
    sample = tuple(next(computed) if a is not None else None for a in selected)
    return sample, indices
