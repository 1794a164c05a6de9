"""Tests of the Dask helpers: reductions equal the NumPy sums, bit for bit across chunkings."""

import numpy as np
import pytest

from skmoe.utils._dask import (
    add_statistics,
    align_row_blocks,
    is_dask_array,
    map_row_blocks,
    reduce_row_blocks,
    sample_rows,
)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def _statistics(X_block, w_block):
    return float(w_block.sum()), (w_block[:, None] * X_block).sum(axis=0), None


def test_is_dask_array():
    X = np.ones((3, 2))
    assert not is_dask_array(X)
    assert is_dask_array(da.from_array(X))
    assert not is_dask_array([[1.0]])


def test_reduce_row_blocks_equals_numpy_sum_and_is_reproducible():
    rng = np.random.RandomState(0)
    X, w = rng.normal(size=(1003, 3)), rng.uniform(size=1003)
    totals = []
    for chunks in [(100, 3), (100, 1)]:
        X_dask, w_dask = align_row_blocks(da.from_array(X, chunks=chunks), w)
        assert X_dask.numblocks == (11, 1) and w_dask.chunks[0] == X_dask.chunks[0]
        totals.append(reduce_row_blocks(_statistics, X_dask, w_dask, split_every=3))
    s0, s1, none = totals[0]
    assert none is None
    np.testing.assert_allclose(s0, w.sum(), rtol=1e-13)
    np.testing.assert_allclose(s1, w @ X, rtol=1e-13)
    # Same blocks, same tree: identical bits whatever the column chunking.
    assert totals[0][0] == totals[1][0]
    np.testing.assert_array_equal(totals[0][1], totals[1][1])


def test_reduce_row_blocks_passes_none_arguments():
    X_dask = da.from_array(np.arange(10.0).reshape(5, 2), chunks=(2, 2))
    (total,) = reduce_row_blocks(lambda Xb, wb: (Xb.sum() if wb is None else -1.0,), X_dask, None)
    assert total == 45.0


def test_add_statistics_does_not_modify_parts():
    a, b = np.ones(2), np.full(2, 2.0)
    total, none = add_statistics((a, None), (b, None))
    np.testing.assert_array_equal(total, [3.0, 3.0])
    np.testing.assert_array_equal(a, [1.0, 1.0])
    assert none is None


def test_align_row_blocks_rejects_inconsistent_rows():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        align_row_blocks(da.ones((5, 2), chunks=2), np.ones(4))


def test_map_row_blocks_is_lazy_and_matches_numpy():
    X = np.random.RandomState(1).normal(size=(50, 4))
    (X_dask,) = align_row_blocks(da.from_array(X, chunks=(7, 2)))
    calls = []

    def row_norms(block):
        calls.append(block.shape[0])
        return np.sqrt((block**2).sum(axis=1))

    lazy = map_row_blocks(row_norms, X_dask)
    assert is_dask_array(lazy) and not calls
    np.testing.assert_allclose(lazy.compute(), np.linalg.norm(X, axis=1), rtol=1e-14)
    two = map_row_blocks(lambda b: b[:, :2] * 2.0, X_dask, n_columns=2)
    np.testing.assert_array_equal(two.compute(), X[:, :2] * 2.0)


def test_sample_rows_is_a_bounded_uniform_sample_of_the_same_rows():
    X = np.arange(200.0).reshape(100, 2)
    y = np.arange(100.0)
    (Xs, ys, none), indices = sample_rows(
        [da.from_array(X, chunks=13), da.from_array(y, chunks=13), None],
        30,
        np.random.RandomState(0),
    )
    assert none is None and Xs.shape == (30, 2) and np.all(np.diff(indices) > 0)
    np.testing.assert_array_equal(Xs, X[indices])
    np.testing.assert_array_equal(ys, y[indices])
    (all_rows,), indices = sample_rows([da.from_array(y, chunks=13)], 500, np.random.RandomState(0))
    np.testing.assert_array_equal(all_rows, y)
