"""Thin array-API helpers: dispatch, namespaces and host/device moves.

skmoe follows scikit-learn's convention: inputs from another array library
(CuPy, PyTorch, array-api-strict, ...) are used in their own namespace and on
their own device only under ``sklearn.set_config(array_api_dispatch=True)``;
NumPy inputs always take the numba path.  Namespaces come from
``array_api_compat`` (the optional ``array_api`` extra), not from
scikit-learn's private ``sklearn.utils._array_api``.

Only *data-sized* work runs in the input's namespace.  Parameter-sized work
(M-steps on ``K`` small matrices, ``p x p`` algebra in GAMP) runs in NumPy
float64 on the host, which keeps one implementation of it; the host/device
traffic per iteration is a few small arrays.
"""

import numpy as np
from sklearn import get_config


def _compat():
    try:
        import array_api_compat
    except ImportError as exc:  # pragma: no cover - the array_api extra is missing
        raise ImportError(
            "Array-API inputs need the array-api-compat package: "
            "pip install 'skmoe[array_api]'."
        ) from exc
    return array_api_compat


def array_api_namespace(*arrays):
    """Array namespace to compute in, or None for the NumPy/numba path.

    Parameters
    ----------
    *arrays : objects
        Inputs; ``None``, Python scalars, lists, NumPy arrays and other
        non-array-API objects (e.g. pandas DataFrames) are ignored.

    Returns
    -------
    xp : module or None
        The (``array_api_compat``-wrapped) namespace of the non-NumPy arrays
        when ``array_api_dispatch`` is enabled, otherwise None.
    """
    if not get_config()["array_api_dispatch"]:
        return None
    candidates = [a for a in arrays if a is not None and not isinstance(a, np.ndarray)]
    if not candidates:
        return None
    compat = _compat()
    candidates = [a for a in candidates if compat.is_array_api_obj(a)]
    if not candidates:
        return None
    xp = compat.array_namespace(*candidates)
    return None if compat.is_numpy_namespace(xp) else xp


def device(x):
    """Device of the array ``x`` (``"cpu"`` for NumPy arrays and array-likes)."""
    if isinstance(x, np.ndarray) or array_api_namespace(x) is None:
        return "cpu"
    return _compat().device(x)


def to_numpy(x, dtype=None):
    """Copy an array of any supported library to a NumPy array on the host.

    Parameters
    ----------
    x : array
        NumPy, CuPy, PyTorch or array-api-strict array, or anything
        :func:`numpy.asarray` converts (lists, scalars).
    dtype : NumPy dtype, default=None
        Dtype of the result; the input's own dtype if None.

    Returns
    -------
    x_np : ndarray
    """
    # Dispatch on the defining package, so that no optional import is needed.
    library = type(x).__module__.partition(".")[0]
    if library == "cupy":
        x = x.get()
    elif library == "torch":
        x = x.detach().cpu().numpy()
    elif library == "array_api_strict":
        xp = x.__array_namespace__()
        x = xp.asarray(x, device=xp.Device("CPU_DEVICE"))
    return np.asarray(x, dtype=dtype)


def from_numpy(x, xp, device, dtype=None):
    """Move a NumPy array to namespace ``xp`` on ``device``.

    Parameters
    ----------
    x : ndarray
    xp : module or None
        Target namespace; None returns ``x`` (cast to ``dtype``) unchanged.
    device : device object
    dtype : dtype of ``xp``, default=None
        Target dtype; the input's if None.

    Returns
    -------
    x_xp : array
    """
    if xp is None:
        return x if dtype is None else np.asarray(x, dtype=dtype)
    # Always a copy: a library on the CPU (PyTorch) would otherwise share
    # memory with host arrays that skmoe goes on updating.
    return xp.asarray(np.ascontiguousarray(x), dtype=dtype, device=device, copy=True)


def move_like(x, like):
    """NumPy ``x`` as an array in the namespace, on the device and in the dtype of ``like``.

    The one way host-side constants (``p x p`` matrices, noise drawn with a
    NumPy generator) reach the arrays they are combined with.

    Parameters
    ----------
    x : array-like
        Host data.
    like : array
        NumPy or array-API array whose namespace, device and dtype are used.

    Returns
    -------
    x_like : array
    """
    return from_numpy(np.asarray(x), array_api_namespace(like), device(like), dtype=like.dtype)


def namespace_or_numpy(x):
    """The namespace to compute in for ``x``: :func:`array_api_namespace`, or NumPy.

    For code written once for NumPy and array-API inputs (NumPy >= 2.1 is an
    array-API namespace itself).
    """
    return array_api_namespace(x) or np


def standard_normal_like(rng, shape, like=None):
    """Standard normal draws made on the host, in the namespace, device and dtype of ``like``.

    Drawing with NumPy whatever the namespace keeps one stream of random
    numbers: a seed gives the same draws on every library and device.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Host generator.
    shape : tuple of int
    like : array, default=None
        Target array; None gives NumPy float64.

    Returns
    -------
    draws : array of shape ``shape``
    """
    draws = rng.standard_normal(tuple(shape))
    return draws if like is None else move_like(draws, like)


def supported_float_dtypes(xp):
    """The dtypes skmoe computes in: float64 and float32 of ``xp`` (NumPy if None)."""
    xp = np if xp is None else xp
    return [xp.float64, xp.float32]


def check_same_namespace(X, estimator, *, attribute, method):
    """Raise unless ``X`` lives in the namespace and on the device of a fitted attribute.

    Only active under ``array_api_dispatch=True``, as in scikit-learn: an
    estimator fitted on CuPy arrays predicts on CuPy arrays on the same GPU.

    Parameters
    ----------
    X : array-like
        Input of ``method``.
    estimator : estimator
        Fitted estimator.
    attribute : str
        Name of a fitted array attribute, e.g. ``"means_"``.
    method : str
        Name of the calling method, used in the message.

    Raises
    ------
    ValueError
        If namespaces or devices differ.
    """
    if not get_config()["array_api_dispatch"]:
        return
    fitted = getattr(estimator, attribute)
    fitted_xp, input_xp = array_api_namespace(fitted), array_api_namespace(X)
    if fitted_xp is None and input_xp is None:
        return
    if fitted_xp is input_xp and device(fitted) == device(X):
        return

    def name(xp):
        return "numpy or array-like" if xp is None else xp.__name__

    raise ValueError(
        f"Inputs passed to {type(estimator).__name__}.{method}() must use the same "
        "namespace and the same device as those passed to fit(): fitted with "
        f"{name(fitted_xp)} on {device(fitted)!r}, got {name(input_xp)} on "
        f"{device(X)!r} in {method}. Convert X, or refit on arrays like it."
    )
