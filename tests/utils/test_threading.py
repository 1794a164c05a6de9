"""Thread discipline of the block-parallel runner (skmoe.utils._threading)."""

import threading

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from skmoe.utils import _threading


def _blas_threads():
    return sorted({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"})


@pytest.fixture
def two_blas_threads():
    with threadpool_limits(2, "blas"):
        yield


def _recording_kernel(start, stop, out):
    # A plain Python "kernel": run_blocks only needs a callable over a block range.
    for block in range(start, stop):
        out[block] = max(_blas_threads())


def test_blas_is_limited_inside_parallel_sections_and_restored(two_blas_threads, monkeypatch):
    monkeypatch.setattr(_threading, "n_threads", lambda: 2)
    seen = np.zeros(4)
    _threading.run_blocks(_recording_kernel, 4, seen)
    np.testing.assert_array_equal(seen, 1.0)
    assert _blas_threads() == [2]


def test_nested_sections_restore_the_user_setting_at_the_outermost(two_blas_threads, monkeypatch):
    monkeypatch.setattr(_threading, "n_threads", lambda: 2)
    seen = np.zeros(2)
    with _threading.blas_limited():
        _threading.run_blocks(_recording_kernel, 2, seen)
        assert _blas_threads() == [1]
    np.testing.assert_array_equal(seen, 1.0)
    assert _blas_threads() == [2]


def test_sections_from_other_threads_leave_the_user_setting(two_blas_threads, monkeypatch):
    monkeypatch.setattr(_threading, "n_threads", lambda: 2)

    def caller():
        for _ in range(10):
            _threading.run_blocks(_recording_kernel, 2, np.zeros(2))

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert _blas_threads() == [2]
    assert _threading._blas_users == 0


def test_n_threads_honours_numba_set_num_threads():
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert _threading.n_threads() == 1
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert _threading.n_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(previous)


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    def kernel(start, stop, out):
        for block in range(start, stop):
            out[block] = block * block

    for threads in (1, 2, 3):
        monkeypatch.setattr(_threading, "n_threads", lambda t=threads: t)
        out = np.zeros(7)
        _threading.run_blocks(kernel, 7, out)
        np.testing.assert_array_equal(out, np.arange(7.0) ** 2)
