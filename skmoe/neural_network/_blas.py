"""One BLAS thread around the numba kernel sections of the neural-network estimators.

The kernels run on skmoe's own threads (:mod:`skmoe.utils._threading`) or, for
the sequential SGD stages, on the calling thread.  A BLAS pool left busy-
waiting by a NumPy or SciPy product just before (OpenBLAS spins for a while
after each call) takes cores from them, and the products made inside these
sections are small (chunk-sized Gram matrices, a ridge solve of a few dozen
unknowns, one expert's standardisation), so one BLAS thread loses nothing.

This belongs with the block runner in :mod:`skmoe.utils._threading`; it is
kept here until a shared helper exists there.
"""

from threadpoolctl import threadpool_limits


def one_blas_thread():
    """Context manager limiting the BLAS pools (OpenBLAS, MKL, BLIS) to one thread.

    Returns
    -------
    limits : threadpoolctl.threadpool_limits
        Restores the previous limits on exit.
    """
    return threadpool_limits(limits=1, user_api="blas")
