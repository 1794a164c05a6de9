"""Private numba kernels, kept apart from the estimator classes.

Each module holds ``@njit(cache=True)`` functions that take and return plain
NumPy arrays only, so that nothing compiled is ever stored on an estimator
(pickling and :func:`sklearn.base.clone` stay safe).
"""
