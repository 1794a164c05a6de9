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

The number of threads is :func:`numba.get_num_threads` once the caller has
used :func:`numba.set_num_threads`, and otherwise
``numba.config.NUMBA_NUM_THREADS`` (the ``NUMBA_NUM_THREADS`` environment
variable, which joblib also sets in its workers; by default the number of
cores).  Reading the configuration instead of calling
:func:`numba.get_num_threads` unconditionally avoids launching numba's own
threading layer, which skmoe does not use.

While a kernel section runs on more than one thread, BLAS is limited to one
thread (:func:`blas_limited`): numba's ``np.dot`` calls scipy's OpenBLAS, whose
own threads would otherwise multiply with ours, and OpenBLAS threads that
busy-wait after a call steal the cores the kernels need.  The limit is set
from the main thread only: measured with scipy's OpenBLAS 0.3.30 and 0.3.31,
a thread count set from another thread, after the main thread has set one,
has no effect, so sections run from joblib threads keep the user's setting.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

# Rows per block below which a block is not split further.
MIN_BLOCK_ROWS = 2048
# Upper bound on the number of blocks (bounds the per-block partial sums).
MAX_BLOCKS = 128

_lock = threading.Lock()
_executor = None
_executor_key = None

# BLAS limiting is reference counted, so that nested sections (a kernel
# section inside an EM loop that is itself limited) restore the user's setting
# only when the outermost one ends.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None
_controller = None


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
    """Threads used by skmoe kernels.

    Returns
    -------
    int
        :func:`numba.get_num_threads` if numba's threading layer has been
        started (as :func:`numba.set_num_threads` does), otherwise
        ``numba.config.NUMBA_NUM_THREADS``.
    """
    # ``_is_initialized`` is private; without it, fall back to the config.
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False):
        return max(1, int(numba.get_num_threads()))
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


@contextmanager
def blas_limited():
    """Limit BLAS to one thread for the duration of the block.

    Does nothing outside the main thread (see the module docstring).  Nested
    use is safe: the limit is taken by the outermost block and released when
    it ends.  The controller is built once (about 15 ms); entering and leaving
    costs tens of microseconds.
    """
    global _blas_users, _blas_limit, _controller
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _blas_limit = _controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


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
    with blas_limited():
        futures = [
            executor.submit(kernel, bounds[i], bounds[i + 1], *args)
            for i in range(workers)
        ]
        for future in futures:
            future.result()
