"""Deterministic block-parallel execution of ``nogil`` numba kernels.

Why not ``numba.prange``: numba's OpenMP layer busy-waits between parallel
regions, which on small machines starves BLAS, OpenMP code in scikit-learn and
the Python thread running the M-step (measured: 10x slower EM on 2 cores),
and its workqueue layer aborts on nested parallelism (kernels called from
joblib threads).  Instead, kernels are ``@njit(nogil=True)`` functions that
process a contiguous range of *blocks* and write one partial result per
block; this module runs the ranges on a thread pool, and callers combine the
per-block results in block order.  The block partition depends only on the
number of rows, so results are bitwise identical whatever the thread count.

The number of threads is ``numba.config.NUMBA_NUM_THREADS`` (the
``NUMBA_NUM_THREADS`` environment variable, which joblib also sets in its
workers; by default the number of cores).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# Rows per block below which a block is not split further.
MIN_BLOCK_ROWS = 2048
# Upper bound on the number of blocks (bounds the per-block partial sums).
MAX_BLOCKS = 128

_lock = threading.Lock()
_executor = None
_executor_key = None


def block_partition(n_samples):
    """Number of blocks and rows per block; a function of ``n_samples`` only.

    Parameters
    ----------
    n_samples : int

    Returns
    -------
    n_blocks : int
    block_size : int
    """
    n_blocks = min(MAX_BLOCKS, max(1, n_samples // MIN_BLOCK_ROWS))
    block_size = -(-n_samples // n_blocks)
    return n_blocks, block_size


def n_threads():
    """Threads used by skmoe kernels (``NUMBA_NUM_THREADS``)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _get_executor(max_workers):
    global _executor, _executor_key
    # Keyed on the pid as well: a pool inherited through fork has no threads.
    key = (os.getpid(), max_workers)
    with _lock:
        if _executor_key != key:
            _executor = ThreadPoolExecutor(max_workers, thread_name_prefix="skmoe")
            _executor_key = key
        return _executor


def run_blocks(kernel, n_blocks, *args):
    """Run ``kernel(block_start, block_stop, *args)`` over ``range(n_blocks)``.

    Parameters
    ----------
    kernel : callable
        A ``nogil`` numba function writing results for blocks
        ``block_start:block_stop`` into arrays passed in ``args``.
    n_blocks : int
    *args
        Passed through to ``kernel``.
    """
    workers = min(n_threads(), n_blocks)
    if workers <= 1:
        kernel(0, n_blocks, *args)
        return
    bounds = np.linspace(0, n_blocks, workers + 1).astype(np.int64)
    executor = _get_executor(workers)
    futures = [
        executor.submit(kernel, bounds[i], bounds[i + 1], *args) for i in range(workers)
    ]
    for future in futures:
        future.result()
