"""Gaussian-gated mixture of experts fitted by closed-form EM.

The estimator class is a thin wrapper: the EM building blocks are small pure
functions (parameter validation, M-step from sufficient statistics, precision
Cholesky factors) and the passes over the data are numba kernels in
:mod:`skmoe.mixture._passes_numba`.
"""

# Parts of the EM skeleton (initialisation schemes, n_init/warm_start logic,
# verbose messages) follow sklearn.mixture._base.BaseMixture (BSD-3-Clause).

import warnings
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_features, check_is_fitted, validate_data

from . import _passes_xp
from ..utils._array_api import (
    array_api_namespace,
    check_same_namespace,
    device,
    from_numpy,
    supported_float_dtypes,
    to_numpy,
)
from . import _passes_numba as _kernels

_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_PARAM_KEYS = (
    "weights",
    "means",
    "covariances",
    "coef",
    "intercept",
    "noise_covariances",
)


# --------------------------------------------------------------------------
# Parameter shapes and validation
# --------------------------------------------------------------------------


def _covariance_shape(covariance_type, n_components, n_features):
    """Shape of the gate covariances for ``covariance_type``."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def check_moe_params(params, *, covariance_type="full", n_features=None, n_outputs=None):
    """Validate a dictionary of Gaussian-gated MoE parameters.

    Parameters
    ----------
    params : dict
        Keys ``"weights"`` (n_components,), ``"means"`` (n_components,
        n_features), ``"covariances"`` (shape set by ``covariance_type``),
        ``"coef"`` (n_components, n_outputs, n_features), ``"intercept"``
        (n_components, n_outputs) and ``"noise_covariances"`` (n_components,
        n_outputs, n_outputs).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Parametrisation of the gate covariances.
    n_features, n_outputs : int, default=None
        Expected dimensions; inferred from ``params`` when None.

    Returns
    -------
    params : dict
        Validated float64 copies of the arrays.

    Raises
    ------
    ValueError
        If a key is missing, a shape is inconsistent, a value is not finite,
        the weights are not a probability vector or a covariance is not
        symmetric positive definite.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}.")
    missing = [key for key in _PARAM_KEYS if key not in params]
    if missing:
        raise ValueError(
            f"Parameter dict is missing {missing}; expected keys {list(_PARAM_KEYS)}."
        )
    unknown = sorted(set(params) - set(_PARAM_KEYS))
    if unknown:
        raise ValueError(f"Unknown parameter keys {unknown}; expected {list(_PARAM_KEYS)}.")
    out = {}
    for key in _PARAM_KEYS:
        value = np.array(params[key], dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"Parameter {key!r} contains NaN or infinity.")
        out[key] = value
    weights = out["weights"]
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(f"'weights' must be a non-empty 1-D array, got shape {weights.shape}.")
    n_components = weights.shape[0]
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"'weights' must be non-negative and sum to 1, got sum {weights.sum():.8g}."
        )
    means = out["means"]
    if means.ndim != 2 or means.shape[0] != n_components:
        raise ValueError(
            f"'means' must have shape (n_components={n_components}, n_features), "
            f"got {means.shape}."
        )
    if n_features is None:
        n_features = means.shape[1]
    intercept = out["intercept"]
    if intercept.ndim == 1:
        intercept = out["intercept"] = intercept[:, None]
    if n_outputs is None:
        n_outputs = intercept.shape[1]
    coef = out["coef"]
    if coef.ndim == 2 and n_outputs == 1:
        coef = out["coef"] = coef[:, None, :]
    noise = out["noise_covariances"]
    if noise.ndim == 1 and n_outputs == 1:
        noise = out["noise_covariances"] = noise[:, None, None]
    expected = {
        "means": (n_components, n_features),
        "covariances": _covariance_shape(covariance_type, n_components, n_features),
        "coef": (n_components, n_outputs, n_features),
        "intercept": (n_components, n_outputs),
        "noise_covariances": (n_components, n_outputs, n_outputs),
    }
    for key, shape in expected.items():
        if out[key].shape != shape:
            raise ValueError(
                f"Parameter {key!r} should have shape {shape} "
                f"(covariance_type={covariance_type!r}), got {out[key].shape}."
            )
    _check_positive_definite(out["covariances"], covariance_type, "covariances")
    _check_positive_definite(noise, "full", "noise_covariances")
    return out


def _check_positive_definite(covariances, covariance_type, name):
    """Raise ``ValueError`` unless every covariance is symmetric positive definite."""
    if covariance_type in ("diag", "spherical"):
        if np.any(covariances <= 0):
            raise ValueError(f"{name!r} must be positive.")
        return
    matrices = covariances[None] if covariance_type == "tied" else covariances
    for k, matrix in enumerate(matrices):
        if not np.allclose(matrix, matrix.T):
            raise ValueError(f"{name!r}[{k}] is not symmetric.")
        if np.any(linalg.eigvalsh(matrix) <= 0.0):
            raise ValueError(f"{name!r}[{k}] is not positive definite.")


# --------------------------------------------------------------------------
# Pure EM building blocks
# --------------------------------------------------------------------------


def _singular_error(what, k):
    return ValueError(
        f"Fitting the Gaussian-gated MoE failed because the {what} of component "
        f"{k} is singular (a collapsed or empty component). Try to decrease the "
        "number of components, or increase reg_covar."
    )


def _precision_cholesky_full(covariances, what="gate covariance"):
    """Upper-triangular ``P_k`` with ``P_k P_k^T = covariances[k]^{-1}``.

    Parameters
    ----------
    covariances : ndarray of shape (n_components, dim, dim)
    what : str
        Used in the error message.

    Returns
    -------
    precisions_cholesky : ndarray of shape (n_components, dim, dim)
    """
    out = np.empty_like(covariances)
    eye = np.eye(covariances.shape[-1])
    for k, covariance in enumerate(covariances):
        try:
            chol = linalg.cholesky(covariance, lower=True)
        except linalg.LinAlgError:
            raise _singular_error(what, k) from None
        out[k] = linalg.solve_triangular(chol, eye, lower=True).T
    return out


def compute_precision_cholesky(covariances, covariance_type):
    """Gate precision Cholesky factors in scikit-learn's layout.

    Parameters
    ----------
    covariances : ndarray
        Gate covariances, shaped as for ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    precisions_cholesky : ndarray
        Same shape as ``covariances``; for "diag" and "spherical" the inverse
        standard deviations.
    """
    if covariance_type == "full":
        return _precision_cholesky_full(covariances)
    if covariance_type == "tied":
        return _precision_cholesky_full(covariances[None])[0]
    for k, variances in enumerate(covariances):
        if np.any(variances <= 0.0):
            raise _singular_error("gate covariance", k)
    return 1.0 / np.sqrt(covariances)


def to_full_matrices(values, covariance_type, n_components, n_features):
    """Expand gate covariances (or their precision factors) to full matrices.

    Parameters
    ----------
    values : ndarray
        Covariances or precision Cholesky factors shaped for
        ``covariance_type`` (see :func:`_covariance_shape`).
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    matrices : ndarray of shape (n_components, n_features, n_features)
        Diagonal types become diagonal matrices, "tied" is repeated (a
        read-only broadcast view).
    """
    if covariance_type == "full":
        return values
    if covariance_type == "tied":
        return np.broadcast_to(values, (n_components, n_features, n_features))
    diag = np.broadcast_to(np.reshape(values, (n_components, -1)), (n_components, n_features))
    full = np.zeros((n_components, n_features, n_features))
    idx = np.arange(n_features)
    full[:, idx, idx] = diag
    return full


def _kernel_params(params):
    """Arguments shared by the numba kernels, as contiguous float64 arrays.

    Parameters
    ----------
    params : dict
        Model parameters (see :func:`check_moe_params`) plus
        ``"precisions_cholesky"`` and ``"covariance_type"``.

    Returns
    -------
    args : tuple
        ``(log_weights, means, gate_prec_chol, gate_log_det, y_centers, coef,
        noise_prec_chol, noise_log_det)``.
    """
    means = np.ascontiguousarray(params["means"], dtype=np.float64)
    n_components, n_features = means.shape
    coef = np.ascontiguousarray(params["coef"], dtype=np.float64)
    intercept = np.asarray(params["intercept"], dtype=np.float64)
    gate_prec_chol = np.ascontiguousarray(
        to_full_matrices(
            np.asarray(params["precisions_cholesky"], dtype=np.float64),
            params["covariance_type"],
            n_components,
            n_features,
        )
    )
    noise_prec_chol = _precision_cholesky_full(
        np.asarray(params["noise_covariances"], dtype=np.float64), "noise covariance"
    )
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(params["weights"], dtype=np.float64))
    return (
        log_weights,
        means,
        gate_prec_chol,
        np.log(np.diagonal(gate_prec_chol, axis1=1, axis2=2)).sum(axis=1),
        np.ascontiguousarray(intercept + np.einsum("kpd,kd->kp", coef, means)),
        coef,
        noise_prec_chol,
        np.log(np.diagonal(noise_prec_chol, axis1=1, axis2=2)).sum(axis=1),
    )


def _data_passes(X):
    """Module with the passes over the data: numba kernels for NumPy ``X``.

    Other arrays reach here only under ``array_api_dispatch=True`` (otherwise
    ``validate_data`` converts them to NumPy) and use
    :mod:`skmoe.mixture._passes_xp`, whose functions take the same arguments.
    """
    return _kernels if isinstance(X, np.ndarray) else _passes_xp


def _target_matrix(X, y):
    """A fresh ``(n_samples, n_outputs)`` copy of ``y`` in the namespace and dtype of ``X``."""
    xp = array_api_namespace(X)
    if xp is None:
        # C-contiguous: the kernels then see one array layout.
        return np.array(y, dtype=X.dtype, order="C").reshape(X.shape[0], -1)
    return xp.reshape(xp.asarray(y, dtype=X.dtype, device=device(X), copy=True), (X.shape[0], -1))


def _in_input_dtype(values, X):
    """``values`` in the dtype of ``X`` (numba kernels return float64)."""
    return values.astype(X.dtype, copy=False) if isinstance(values, np.ndarray) else values


def _moments_from_responsibilities(Z, resp):
    """Sufficient statistics of ``Z = [X, Y]`` for given responsibilities.

    Used once per initialisation, so plain NumPy; it forms one
    ``(n_samples, dim)`` temporary per component, never a 3-D one.

    Returns
    -------
    s0, s1, s2, centers
        As returned by :func:`skmoe.mixture._passes_numba.em_pass`, with
        moments taken about ``centers`` (the weighted means, so ``s1 = 0``).
    """
    s0 = resp.sum(axis=0)
    centers = (resp.T @ Z) / (s0 + 10 * np.finfo(Z.dtype).eps)[:, None]
    n_components, dim = centers.shape
    s2 = np.empty((n_components, dim, dim))
    for k in range(n_components):
        diff = Z - centers[k]
        s2[k] = (resp[:, k] * diff.T) @ diff
    return s0, np.zeros((n_components, dim)), s2, centers


def m_step(s0, s1, s2, centers, n_features, covariance_type, reg_covar):
    """Closed-form M-step from moments about ``centers``.

    ``reg_covar`` is added to the diagonal of each component's joint
    covariance of ``(x, y)``.  With ``covariance_type="full"`` this is
    exactly the M-step of :class:`~sklearn.mixture.GaussianMixture` on
    ``[X, y]``, mapped through ``A = S_xx^{-1} S_xy`` (so the experts are
    ridge regressions with penalty ``reg_covar * N_k``) and
    ``S = S_yy - S_yx S_xx^{-1} S_xy``.  The expert update does not depend on
    the gate covariance type, which only constrains ``Sigma_k``.

    Parameters
    ----------
    s0 : ndarray of shape (n_components,)
        Responsibility sums.
    s1 : ndarray of shape (n_components, dim)
        Responsibility-weighted sums of ``z - centers[k]``.
    s2 : ndarray of shape (n_components, dim, dim)
        Responsibility-weighted sums of ``(z - c_k)(z - c_k)^T``.
    centers : ndarray of shape (n_components, dim)
        Points about which the moments were taken.
    n_features : int
        Number of input features ``d``; ``dim - d`` is the number of outputs.
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float

    Returns
    -------
    params : dict
        The six model parameters plus ``"precisions_cholesky"`` and
        ``"covariance_type"``.
    """
    d = n_features
    nk = s0 + 10 * np.finfo(np.float64).eps
    shift = s1 / nk[:, None]
    joint_means = centers + shift
    cov = s2 / nk[:, None, None] - shift[:, :, None] * shift[:, None, :]
    cov_xx = cov[:, :d, :d]
    cov_xy = cov[:, :d, d:]
    n_components, dim = joint_means.shape
    reg_x = reg_covar * np.eye(d)
    reg_y = reg_covar * np.eye(dim - d)

    coef = np.empty((n_components, dim - d, d))
    noise = np.empty((n_components, dim - d, dim - d))
    for k in range(n_components):
        try:
            factor = linalg.cho_factor(cov_xx[k] + reg_x, lower=True)
        except linalg.LinAlgError:
            raise _singular_error("gate covariance", k) from None
        coef[k] = linalg.cho_solve(factor, cov_xy[k]).T
        noise[k] = cov[k, d:, d:] + reg_y - coef[k] @ cov_xy[k]
        noise[k] = 0.5 * (noise[k] + noise[k].T)

    means = joint_means[:, :d]
    intercept = joint_means[:, d:] - np.einsum("kpd,kd->kp", coef, means)
    if covariance_type == "full":
        covariances = cov_xx + reg_x
    elif covariance_type == "tied":
        covariances = np.einsum("k,kij->ij", nk, cov_xx) / nk.sum() + reg_x
    else:
        variances = np.diagonal(cov_xx, axis1=1, axis2=2) + reg_covar
        covariances = variances if covariance_type == "diag" else variances.mean(axis=1)
    return {
        "weights": nk / nk.sum(),
        "means": means,
        "covariances": covariances,
        "coef": coef,
        "intercept": intercept,
        "noise_covariances": noise,
        "precisions_cholesky": compute_precision_cholesky(covariances, covariance_type),
        "covariance_type": covariance_type,
    }


def n_free_parameters(n_components, n_features, n_outputs, covariance_type):
    """Number of free parameters of the joint model ``p(x, y)``.

    Parameters
    ----------
    n_components, n_features, n_outputs : int
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    n_parameters : int
    """
    k, d, p = n_components, n_features, n_outputs
    gate_cov = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    experts = k * p * d + k * p + k * p * (p + 1) // 2
    return (k - 1) + k * d + gate_cov + experts


def sample_moe(params, n_samples, random_state, covariance_type="full"):
    """Draw ``(X, Y, labels)`` from the joint model, grouped by component.

    Vectorised per component: the cost is ``O(n_samples (d^2 + p d))`` and the
    only Python loop runs over components.

    Parameters
    ----------
    params : dict
        Validated parameters (see :func:`check_moe_params`).
    n_samples : int
    random_state : numpy.random.RandomState
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    labels : ndarray of shape (n_samples,)
        Component of each row; rows are sorted by component.
    """
    means = params["means"]
    n_components, n_features = means.shape
    counts = random_state.multinomial(n_samples, params["weights"])
    covariances = to_full_matrices(
        params["covariances"], covariance_type, n_components, n_features
    )
    n_outputs = params["intercept"].shape[1]
    X = np.empty((n_samples, n_features))
    Y = np.empty((n_samples, n_outputs))
    start = 0
    for k, count in enumerate(counts):
        stop = start + count
        x = means[k] + random_state.standard_normal((count, n_features)) @ linalg.cholesky(
            covariances[k], lower=True
        ).T
        noise_chol = linalg.cholesky(params["noise_covariances"][k], lower=True)
        X[start:stop] = x
        Y[start:stop] = (
            x @ params["coef"][k].T
            + params["intercept"][k]
            + random_state.standard_normal((count, n_outputs)) @ noise_chol.T
        )
        start = stop
    labels = np.repeat(np.arange(n_components), counts)
    return X, Y, labels


def _free_covariance(covariances, covariance_type):
    """Unconstrained coordinates of covariances: log-Cholesky or log-variances."""
    if covariance_type in ("diag", "spherical"):
        return np.log(covariances).ravel()
    matrices = covariances[None] if covariance_type == "tied" else covariances
    chol = np.linalg.cholesky(matrices)
    dim = chol.shape[-1]
    idx = np.arange(dim)
    chol[:, idx, idx] = np.log(chol[:, idx, idx])
    rows, cols = np.tril_indices(dim)
    return chol[:, rows, cols].ravel()


def _covariance_from_free(values, covariance_type, shape):
    """Inverse of :func:`_free_covariance`; always symmetric positive definite."""
    if covariance_type in ("diag", "spherical"):
        return np.exp(values).reshape(shape)
    dim = shape[-1]
    n_matrices = 1 if covariance_type == "tied" else shape[0]
    rows, cols = np.tril_indices(dim)
    chol = np.zeros((n_matrices, dim, dim))
    chol[:, rows, cols] = values.reshape(n_matrices, -1)
    idx = np.arange(dim)
    chol[:, idx, idx] = np.exp(chol[:, idx, idx])
    matrices = chol @ np.swapaxes(chol, 1, 2)
    return matrices[0] if covariance_type == "tied" else matrices


def _params_to_vector(params):
    """Flatten parameters into unconstrained coordinates (for extrapolation).

    Weights become log-weights, covariances log-Cholesky factors, so that any
    vector maps back to valid parameters.
    """
    covariance_type = params["covariance_type"]
    return np.concatenate(
        [
            np.log(params["weights"]),
            params["means"].ravel(),
            _free_covariance(params["covariances"], covariance_type),
            params["coef"].ravel(),
            params["intercept"].ravel(),
            _free_covariance(params["noise_covariances"], "full"),
        ]
    )


def _params_from_vector(vector, like):
    """Parameters with the shapes of ``like`` from :func:`_params_to_vector` output.

    Raises ``ValueError`` if the result is numerically singular.
    """
    covariance_type = like["covariance_type"]
    sizes = [
        like["weights"].size,
        like["means"].size,
        _free_covariance(like["covariances"], covariance_type).size,
        like["coef"].size,
        like["intercept"].size,
    ]
    parts = np.split(vector, np.cumsum(sizes))
    log_weights = parts[0] - parts[0].max()
    weights = np.exp(log_weights)
    covariances = _covariance_from_free(parts[2], covariance_type, like["covariances"].shape)
    params = {
        "weights": weights / weights.sum(),
        "means": parts[1].reshape(like["means"].shape),
        "covariances": covariances,
        "coef": parts[3].reshape(like["coef"].shape),
        "intercept": parts[4].reshape(like["intercept"].shape),
        "noise_covariances": _covariance_from_free(
            parts[5], "full", like["noise_covariances"].shape
        ),
        "covariance_type": covariance_type,
    }
    if not all(np.all(np.isfinite(value)) for key, value in params.items() if key != "covariance_type"):
        raise ValueError("Extrapolated parameters are not finite.")
    params["precisions_cholesky"] = compute_precision_cholesky(covariances, covariance_type)
    return params


def _warm_start_mismatch(what, fitted, current):
    """The error for a warm start from parameters of another shape or type."""
    return ValueError(
        f"warm_start=True continues from the fitted parameters, but {what} changed "
        f"from {fitted!r} to {current!r} since they were fitted. Set "
        "warm_start=False (or use a fresh estimator) to refit from scratch."
    )


# --------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------


class GaussianGatedMoERegressor(RegressorMixin, BaseEstimator):
    """Gaussian-gated mixture of linear experts, fitted by closed-form EM.

    The conditional model is

    .. math::

        p(y \\mid x) = \\sum_{k=1}^K g_k(x)\\,
            \\mathcal N(y \\mid A_k x + b_k, S_k), \\qquad
        g_k(x) = \\frac{\\pi_k \\mathcal N(x \\mid \\mu_k, \\Sigma_k)}
            {\\sum_j \\pi_j \\mathcal N(x \\mid \\mu_j, \\Sigma_j)},

    and the parameters maximise the *joint* likelihood
    :math:`\\sum_n \\log \\sum_k \\pi_k \\mathcal N(x_n \\mid \\mu_k, \\Sigma_k)
    \\mathcal N(y_n \\mid A_k x_n + b_k, S_k)`, for which every EM step is in
    closed form.  With ``covariance_type="full"`` the model is a full-covariance
    Gaussian mixture on ``[x, y]`` reparametrised for regression.  The
    conditional likelihood alone does not identify the gate parameters.

    Each EM iteration is one fused, parallel numba pass over the data
    (E-step and sufficient statistics); results do not depend on the number of
    threads.  Under ``sklearn.set_config(array_api_dispatch=True)``, CuPy,
    PyTorch or other array-API inputs are processed in their own namespace
    and on their own device instead, and the fitted attributes live there
    (see :ref:`array_api`).

    Read more in the :ref:`User Guide <ggmoe>`.

    Parameters
    ----------
    n_components : int, default=2
        Number of experts ``K``.

    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Parametrisation of the gate covariances ``Sigma_k`` (as in
        :class:`~sklearn.mixture.GaussianMixture`).  Expert noise covariances
        are always full.

    tol : float, default=1e-6
        EM stops when the gain in mean joint log-likelihood per sample is
        below ``tol``.

    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of each component's joint
        covariance of ``(x, y)``: gate covariances and noise covariances get
        ``+reg_covar``, and the experts become ridge regressions with penalty
        ``reg_covar * N_k``.

    max_iter : int, default=1000
        Maximum number of EM iterations per initialisation.

    n_init : int, default=1
        Number of initialisations; the one with the highest final
        log-likelihood is kept.

    init_params : {"kmeans", "k-means++", "random", "random_from_data"} or dict, \
            default="kmeans"
        Initialisation of the responsibilities, computed on ``[X, y]`` exactly
        as :class:`~sklearn.mixture.GaussianMixture` does, or a dict of
        starting parameters with keys ``"weights"``, ``"means"``,
        ``"covariances"`` (shaped for ``covariance_type``), ``"coef"``,
        ``"intercept"`` and ``"noise_covariances"``.

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and :meth:`sample`.

    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous solution and
        ``n_init`` is ignored.  ``fit`` raises a ``ValueError`` if
        ``n_components``, ``covariance_type`` or the number of features or
        outputs differ from those of the previous solution.

    verbose : int, default=0
        0 is silent, 1 prints the initialisation and iteration numbers, 2
        also prints timings and the log-likelihood change.

    verbose_interval : int, default=10
        Iterations between two progress lines.

    acceleration : {None, "squarem"}, default=None
        If "squarem", EM is accelerated by the squared extrapolation method
        (SQUAREM, Varadhan & Roland 2008, scheme S3) in unconstrained
        coordinates (log-weights, log-Cholesky covariances).  Every
        extrapolated point is followed by an EM step and kept only if its
        log-likelihood is at least that of the plain EM path, so the recorded
        likelihood never decreases.  The stopping rule is the plain one (a
        single EM step gains less than ``tol``), so both reach the same
        tolerance; SQUAREM pays off where EM is slow, e.g. over-fitted
        models.  ``n_iter_`` counts every E+M pass, extrapolated or not.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing weights ``pi_k``.

    means_ : ndarray of shape (n_components, n_features)
        Gate means ``mu_k``.

    covariances_ : ndarray
        Gate covariances; shape (n_components, n_features, n_features) for
        "full", (n_features, n_features) for "tied", (n_components,
        n_features) for "diag" and (n_components,) for "spherical".

    precisions_cholesky_ : ndarray
        Cholesky factors of the gate precisions, shaped like
        ``covariances_`` (as in :class:`~sklearn.mixture.GaussianMixture`).

    coef_ : ndarray of shape (n_components, n_outputs, n_features)
        Expert slopes ``A_k``.

    intercept_ : ndarray of shape (n_components, n_outputs)
        Expert intercepts ``b_k``.

    noise_covariances_ : ndarray of shape (n_components, n_outputs, n_outputs)
        Expert noise covariances ``S_k``.

    converged_ : bool
        Whether the best initialisation converged.

    n_iter_ : int
        EM iterations of the best initialisation.

    lower_bound_ : float
        Mean joint log-likelihood per sample of the returned parameters.

    lower_bounds_ : list of float
        Mean joint log-likelihood at the start of each EM iteration of the
        best initialisation; never decreasing.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, if ``X`` had string column names.

    n_outputs_ : int
        Number of outputs.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Unsupervised mixture on ``[X, y]``.
    skmoe.datasets.make_gaussian_gated_moe : Sample from this model.

    Examples
    --------
    >>> from skmoe import GaussianGatedMoERegressor
    >>> from skmoe.datasets import make_gaussian_gated_moe
    >>> X, y = make_gaussian_gated_moe(n_samples=2000, n_components=2,
    ...                                random_state=0)
    >>> moe = GaussianGatedMoERegressor(n_components=2, random_state=0).fit(X, y)
    >>> moe.predict_gates(X[:2]).sum(axis=1)
    array([1., 1.])
    >>> round(moe.score(X, y), 2) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(_COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"kmeans", "k-means++", "random", "random_from_data"}),
            dict,
        ],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "acceleration": [StrOptions({"squarem"}), None],
    }

    def __init__(
        self,
        n_components=2,
        *,
        covariance_type="full",
        tol=1e-6,
        reg_covar=1e-6,
        max_iter=1000,
        n_init=1,
        init_params="kmeans",
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        acceleration=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.acceleration = acceleration

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # Every option is supported: initialisation and M-steps run on the
        # host, the passes over the data in the input's namespace.
        tags.array_api_support = True
        return tags

    # ----------------------------------------------------------------- fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Estimate the parameters by EM on the joint likelihood of ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : GaussianGatedMoERegressor
            Fitted estimator.
        """
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:
            self._check_warm_start(X)
        X, y = validate_data(
            self,
            X,
            y,
            reset=do_init,
            multi_output=True,
            y_numeric=True,
            dtype=supported_float_dtypes(array_api_namespace(X)),
            order="C",
            ensure_min_samples=2,
        )
        Y = _target_matrix(X, y)
        n_samples = X.shape[0]
        if n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {n_samples}."
            )
        if not do_init and Y.shape[1] != self.n_outputs_:
            raise _warm_start_mismatch("the number of outputs in y", self.n_outputs_, Y.shape[1])
        user_params = None
        if isinstance(self.init_params, dict) and do_init:
            user_params = check_moe_params(
                {key: to_numpy(value) for key, value in self.init_params.items()},
                covariance_type=self.covariance_type,
                n_features=X.shape[1],
                n_outputs=Y.shape[1],
            )
            if user_params["weights"].shape[0] != self.n_components:
                raise ValueError(
                    f"init_params has {user_params['weights'].shape[0]} components "
                    f"but n_components={self.n_components}."
                )

        random_state = check_random_state(self.random_state)
        n_init = self.n_init if do_init else 1
        best = None
        for init in range(n_init):
            self._print_verbose_msg_init_beg(init)
            if not do_init:
                params = self._get_parameters()
            elif user_params is not None:
                params = {
                    **user_params,
                    "precisions_cholesky": compute_precision_cholesky(
                        user_params["covariances"], self.covariance_type
                    ),
                    "covariance_type": self.covariance_type,
                }
            else:
                params = self._initialize_parameters(X, Y, random_state)
            run = self._run_squarem if self.acceleration == "squarem" else self._run_em
            params, n_iter, lower_bounds, converged = run(X, Y, params)
            lower_bound = self._mean_log_likelihood(X, Y, params)
            self._print_verbose_msg_init_end(lower_bound, converged)
            if best is None or lower_bound > best[0]:
                best = (lower_bound, params, n_iter, lower_bounds, converged)

        lower_bound, params, n_iter, lower_bounds, converged = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different "
                "init parameters, or increase max_iter, tol, or check for "
                "degenerate data.",
                ConvergenceWarning,
            )
        self._set_parameters(params, X)
        self._fitted_covariance_type = self.covariance_type
        self.n_outputs_ = Y.shape[1]
        self._y_ndim = np.ndim(y)
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.lower_bound_ = float(lower_bound)
        self.lower_bounds_ = lower_bounds
        return self

    def _check_warm_start(self, X):
        """Raise unless the fitted parameters fit the current settings and ``X``."""
        checks = [
            ("n_components", self.weights_.shape[0], self.n_components),
            ("covariance_type", self._fitted_covariance_type, self.covariance_type),
        ]
        try:
            checks.append(("the number of features in X", self.n_features_in_, _num_features(X)))
        except (TypeError, IndexError):
            pass  # not a 2-D array-like: validate_data reports it
        for what, fitted, current in checks:
            if fitted != current:
                raise _warm_start_mismatch(what, fitted, current)

    def _initialize_parameters(self, X, Y, random_state):
        """Responsibilities from ``init_params`` on ``[X, Y]``, then one M-step.

        Runs on the host in NumPy whatever the input's namespace (KMeans has
        no array-API support), so that every ``init_params`` gives the same
        start on every device.
        """
        Z = np.hstack([to_numpy(X), to_numpy(Y)]).astype(np.float64, copy=False)
        n_samples = Z.shape[0]
        resp = np.zeros((n_samples, self.n_components))
        if self.init_params == "kmeans":
            labels = (
                KMeans(n_clusters=self.n_components, n_init=1, random_state=random_state)
                .fit(Z)
                .labels_
            )
            resp[np.arange(n_samples), labels] = 1
        elif self.init_params == "random":
            resp = random_state.uniform(size=(n_samples, self.n_components))
            resp /= resp.sum(axis=1)[:, np.newaxis]
        elif self.init_params == "random_from_data":
            indices = random_state.choice(n_samples, size=self.n_components, replace=False)
            resp[indices, np.arange(self.n_components)] = 1
        else:  # "k-means++"
            _, indices = kmeans_plusplus(Z, self.n_components, random_state=random_state)
            resp[indices, np.arange(self.n_components)] = 1
        return m_step(
            *_moments_from_responsibilities(Z, resp),
            X.shape[1],
            self.covariance_type,
            self.reg_covar,
        )

    def _em_step(self, X, Y, params):
        """One E+M pass: mean log-likelihood of ``params`` and the updated parameters."""
        kernel_args = _kernel_params(params)
        log_likelihood, s0, s1, s2 = _data_passes(X).em_pass(X, Y, *kernel_args, True)
        lower_bound = log_likelihood / X.shape[0]
        if not np.isfinite(lower_bound):
            raise ValueError(
                "The log-likelihood is not finite; the data may be degenerate. "
                "Try increasing reg_covar or rescaling the data."
            )
        # The kernel's moments are about (mu_k, A_k mu_k + b_k).
        centers = np.hstack([params["means"], kernel_args[4]])
        return lower_bound, m_step(
            s0, s1, s2, centers, X.shape[1], self.covariance_type, self.reg_covar
        )

    def _run_em(self, X, Y, params):
        """EM iterations from ``params``; returns the last M-step's parameters."""
        lower_bound = -np.inf
        lower_bounds = []
        converged = False
        n_iter = 0
        self._iter_prev_time = self._init_prev_time
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            lower_bound, params = self._em_step(X, Y, params)
            lower_bounds.append(float(lower_bound))
            change = lower_bound - previous
            self._print_verbose_msg_iter_end(n_iter, change)
            if abs(change) < self.tol:
                converged = True
                break
        return params, n_iter, lower_bounds, converged

    def _run_squarem(self, X, Y, params):
        """SQUAREM-accelerated EM (S3 step length, adaptive bound, monotone safeguard).

        Each cycle evaluates ``theta0``, ``theta1 = F(theta0)`` and an
        extrapolated ``theta'`` (followed by one EM step); ``theta'`` is kept
        only if ``L(theta') >= L(theta1)``, otherwise the cycle falls back to
        ``theta2 = F(theta1)``.  Convergence is declared, as for plain EM,
        when ``L(theta1) - L(theta0) < tol``, and ``theta2`` is returned.
        """
        self._iter_prev_time = self._init_prev_time
        lower_bounds = []
        step_max = 1.0
        n_iter = 0
        theta0, ll0, theta1 = params, None, None
        while True:
            if ll0 is None:
                ll0, theta1 = self._em_step(X, Y, theta0)
                n_iter += 1
                lower_bounds.append(float(ll0))
                if n_iter >= self.max_iter:
                    return theta1, n_iter, lower_bounds, False
            ll1, theta2 = self._em_step(X, Y, theta1)
            n_iter += 1
            lower_bounds.append(float(ll1))
            self._print_verbose_msg_iter_end(n_iter, ll1 - ll0)
            if abs(ll1 - ll0) < self.tol:
                return theta2, n_iter, lower_bounds, True
            if n_iter >= self.max_iter:
                return theta2, n_iter, lower_bounds, False

            v0 = _params_to_vector(theta0)
            v1 = _params_to_vector(theta1)
            r = v1 - v0
            v = _params_to_vector(theta2) - 2 * v1 + v0
            norm_v = np.linalg.norm(v)
            alpha = np.linalg.norm(r) / norm_v if norm_v > 0 else 1.0
            alpha = min(max(alpha, 1.0), step_max)
            if alpha == step_max:
                step_max *= 4.0
            accepted = False
            if alpha > 1.0:
                try:
                    extrapolated = _params_from_vector(v0 + 2 * alpha * r + alpha**2 * v, theta0)
                    ll_x, theta_next = self._em_step(X, Y, extrapolated)
                    n_iter += 1
                    accepted = bool(np.isfinite(ll_x) and ll_x >= ll1)
                except ValueError:  # singular extrapolated covariance
                    pass
                if not accepted:
                    step_max = max(1.0, step_max / 4.0)
            if accepted:
                lower_bounds.append(float(ll_x))
                theta0 = theta_next
            else:
                theta0 = theta2
            ll0 = None
            if n_iter >= self.max_iter:
                # No pass left to evaluate theta0: return the last EM iterate.
                return theta2 if not accepted else theta_next, n_iter, lower_bounds, False

    @staticmethod
    def _mean_log_likelihood(X, Y, params):
        log_likelihood = _data_passes(X).em_pass(X, Y, *_kernel_params(params), False)[0]
        return log_likelihood / X.shape[0]

    def _get_parameters(self):
        """Fitted parameters as host NumPy float64 arrays."""
        params = {
            key: to_numpy(getattr(self, key + "_"), dtype=np.float64)
            for key in (*_PARAM_KEYS, "precisions_cholesky")
        }
        params["covariance_type"] = self.covariance_type
        return params

    def _set_parameters(self, params, X):
        """Store ``params`` in the namespace, device and dtype of ``X``."""
        xp = array_api_namespace(X)
        for key in (*_PARAM_KEYS, "precisions_cholesky"):
            value = np.asarray(params[key], dtype=X.dtype if xp is None else np.float64)
            if xp is not None:
                value = from_numpy(value, xp, device(X), dtype=X.dtype)
            setattr(self, key + "_", value)

    def _fitted_kernel_params(self):
        check_is_fitted(self)
        return _kernel_params(self._get_parameters())

    def _validate_x(self, X, method):
        check_same_namespace(X, self, attribute="means_", method=method)
        return validate_data(
            self, X, reset=False, dtype=supported_float_dtypes(array_api_namespace(X)), order="C"
        )

    # ------------------------------------------------------------- inference

    def _validate_xy(self, X, y, method):
        check_same_namespace(X, self, attribute="means_", method=method)
        X, y = validate_data(
            self,
            X,
            y,
            reset=False,
            multi_output=True,
            y_numeric=True,
            dtype=supported_float_dtypes(array_api_namespace(X)),
            order="C",
        )
        Y = _target_matrix(X, y)
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {Y.shape[1]} outputs, but {type(self).__name__} was fitted "
                f"with {self.n_outputs_}."
            )
        return X, Y

    def predict(self, X, return_std=False):
        """Conditional mean ``E[y | x] = sum_k g_k(x) (A_k x + b_k)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        return_std : bool, default=False
            Also return the standard deviation of the predictive mixture
            ``p(y | x)`` (per output, including both the noise and the spread
            of the experts' means).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictive mean; 1-D if ``y`` was 1-D at fit time.
        y_std : ndarray, same shape as ``y_mean``
            Predictive standard deviation; only if ``return_std`` is True.
        """
        check_is_fitted(self)
        X = self._validate_x(X, "predict")
        params = self._get_parameters()
        log_weights, means, gate_prec_chol, gate_log_det = _kernel_params(params)[:4]
        mean, var = _data_passes(X).predictive_moments(
            X,
            log_weights,
            means,
            gate_prec_chol,
            gate_log_det,
            np.ascontiguousarray(params["coef"]),
            np.ascontiguousarray(params["intercept"]),
            np.ascontiguousarray(np.diagonal(params["noise_covariances"], axis1=1, axis2=2)),
        )
        mean = _in_input_dtype(mean, X)
        if self._y_ndim == 1:
            mean, var = mean[:, 0], var[:, 0]
        if return_std:
            return mean, _in_input_dtype(var**0.5, X)
        return mean

    def predict_gates(self, X):
        """Gate probabilities ``g_k(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        gates : ndarray of shape (n_samples, n_components)
            Rows sum to one.
        """
        check_is_fitted(self)
        X = self._validate_x(X, "predict_gates")
        gates = _data_passes(X).gate_probabilities(X, *self._fitted_kernel_params()[:4])
        return _in_input_dtype(gates, X)

    def _log_densities(self, X, y, method):
        """Validated ``X`` and per-sample ``log p(x, y)``, ``log p(x)``.

        ``y=None`` gives ``log p(x)`` twice.  The densities are float64 on the
        numba path (callers cast to ``X.dtype`` after taking differences).
        """
        check_is_fitted(self)
        args = self._fitted_kernel_params()
        if y is None:
            X = self._validate_x(X, method)
            Y = _target_matrix(X, np.empty((X.shape[0], 0)))
            # Drop the experts: (log_weights, means, gate factors) plus empty
            # output-side arrays.
            n_components, n_features = self.means_.shape
            args = (
                *args[:4],
                np.empty((n_components, 0)),
                np.empty((n_components, 0, n_features)),
                np.empty((n_components, 0, 0)),
                np.zeros(n_components),
            )
        else:
            X, Y = self._validate_xy(X, y, method)
        return (X, *_data_passes(X).log_densities(X, Y, *args))

    def score_samples(self, X, y=None):
        """Conditional log-density ``log p(y | x)`` of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets.  If None, the marginal log-density ``log p(x)`` of the
            inputs under the gate mixture is returned instead (low values flag
            inputs far from every expert's region).

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(y_n | x_n)``, or ``log p(x_n)`` if ``y`` is None.
        """
        X, log_joint, log_marginal_x = self._log_densities(X, y, "score_samples")
        return _in_input_dtype(log_marginal_x if y is None else log_joint - log_marginal_x, X)

    def joint_log_likelihood(self, X, y):
        """Mean joint log-likelihood ``mean_n log p(x_n, y_n)``.

        This is the objective maximised by :meth:`fit`; on the training data it
        equals ``lower_bound_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        log_likelihood : float
            Mean joint log-likelihood per sample.
        """
        log_joint = self._log_densities(X, y, "joint_log_likelihood")[1]
        xp = array_api_namespace(log_joint)
        if xp is None:
            return float(np.mean(log_joint))
        return float(to_numpy(xp.mean(xp.astype(log_joint, xp.float64))))

    def _n_parameters(self):
        return n_free_parameters(
            self.n_components, self.n_features_in_, self.n_outputs_, self.covariance_type
        )

    def bic(self, X, y):
        """Bayesian information criterion of the joint model on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        bic : float
            ``-2 log L + n_parameters log n``; lower is better.
        """
        n_samples = np.shape(X)[0]
        return float(
            -2 * self.joint_log_likelihood(X, y) * n_samples
            + self._n_parameters() * np.log(n_samples)
        )

    def aic(self, X, y):
        """Akaike information criterion of the joint model on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        aic : float
            ``-2 log L + 2 n_parameters``; lower is better.
        """
        n_samples = np.shape(X)[0]
        return float(-2 * self.joint_log_likelihood(X, y) * n_samples + 2 * self._n_parameters())

    def sample(self, n_samples=1):
        """Draw samples from the fitted joint model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Targets, 1-D if ``y`` was 1-D at fit time.
        labels : ndarray of shape (n_samples,)
            Component that generated each sample (rows are grouped by
            component, as in :meth:`sklearn.mixture.GaussianMixture.sample`).
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. It must be an "
                "integer >= 1."
            )
        params = self._get_parameters()
        X, Y, labels = sample_moe(
            params, n_samples, check_random_state(self.random_state), self.covariance_type
        )
        if self._y_ndim == 1:
            Y = Y[:, 0]
        # "Everything follows X": samples live where the fitted parameters do.
        xp = array_api_namespace(self.means_)
        dtype = self.means_.dtype
        if xp is None:
            return X.astype(dtype, copy=False), Y.astype(dtype, copy=False), labels
        where = device(self.means_)
        return (
            from_numpy(X, xp, where, dtype=dtype),
            from_numpy(Y, xp, where, dtype=dtype),
            from_numpy(labels, xp, where),
        )

    # -------------------------------------------------------------- verbose

    def _print_verbose_msg_init_beg(self, n_init):
        self._init_prev_time = perf_counter()
        if self.verbose:
            print(f"Initialization {n_init}")

    def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval != 0:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
        elif self.verbose >= 2:
            now = perf_counter()
            print(
                f"  Iteration {n_iter}\t time lapse {now - self._iter_prev_time:.5f}s"
                f"\t ll change {diff_ll:.5g}"
            )
            self._iter_prev_time = now

    def _print_verbose_msg_init_end(self, lower_bound, converged):
        if self.verbose == 0:
            return
        state = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {state}.")
        else:
            print(
                f"Initialization {state}. time lapse "
                f"{perf_counter() - self._init_prev_time:.5f}s\t lower bound "
                f"{lower_bound:.5f}."
            )
