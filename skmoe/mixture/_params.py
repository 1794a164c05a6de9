"""Parameters of the Gaussian-gated MoE: the record, its checks and its algebra.

Everything here is a pure function of NumPy float64 arrays; nothing reads an
estimator.  The *parameter record* is a dict with the keys of
``_PARAM_KEYS`` (``"weights"``, ``"means"``, ``"covariances"``,
``"coef"``, ``"intercept"``, ``"noise_covariances"``; validated by
:func:`check_moe_params`), to which the M-step adds
``"precisions_cholesky"`` and ``"covariance_type"``.  This module holds

- validation (:func:`check_moe_params`) and covariance algebra
  (:func:`compute_precision_cholesky`, :func:`to_full_matrices`,
  :func:`_precision_cholesky_full`);
- the map to the kernel layout of the data passes (:func:`_kernel_params`,
  :func:`kernel_layout`; see :mod:`skmoe.mixture._passes`);
- the closed-form M-step (:func:`m_step`, :func:`_moments_from_responsibilities`)
  and the algebra of its sufficient statistics (:func:`shift_statistics`,
  :func:`blend_statistics`, used by stepwise EM);
- sampling (:func:`sample_moe`) and parameter counting (:func:`n_free_parameters`);
- the maps to and from unconstrained coordinates used by SQUAREM
  (:func:`_params_to_vector`, :func:`_params_from_vector`).

:mod:`skmoe.datasets`, :mod:`skmoe.metrics` and :mod:`skmoe.experiments`
import from here, not from the estimator module.
"""

import numpy as np
from scipy import linalg

from ._passes import KernelParams

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
    for k, covariance in enumerate(covariances):
        try:
            chol = linalg.cholesky(covariance, lower=True)
        except linalg.LinAlgError:
            raise _singular_error(what, k) from None
        out[k] = _inverse_lower_triangular(chol, what, k).T
    return out


def _inverse_lower_triangular(chol, what, k):
    """Inverse of the lower-triangular ``chol`` by LAPACK ``?trtri``.

    Not ``linalg.solve_triangular(chol, eye)``: that goes through a BLAS-3
    call which leaves OpenBLAS worker threads spinning for about 0.1 s after
    returning, even for a 9x9 matrix, and so slows every numba pass that
    follows the M-step (issue 16; ``trtri`` on these sizes starts no threads).
    """
    trtri = linalg.lapack.get_lapack_funcs("trtri", (chol,))
    inverse, info = trtri(chol, lower=1)
    if info != 0:  # info > 0: exactly zero diagonal entry; < 0: bad argument
        raise _singular_error(what, k)
    return inverse


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


def kernel_layout(params):
    """All the data passes' parameter arguments, as host float64 arrays.

    Parameters
    ----------
    params : dict
        Model parameters (see :func:`check_moe_params`) plus
        ``"precisions_cholesky"`` and ``"covariance_type"``.

    Returns
    -------
    layout : KernelParams
        The eight arrays of :func:`_kernel_params`, then the expert
        intercepts ``(n_components, n_outputs)`` and noise variances (the
        diagonal of each noise covariance, ``(n_components, n_outputs)``)
        used by the predictive moments.
    """
    noise = np.asarray(params["noise_covariances"], dtype=np.float64)
    return KernelParams(
        *_kernel_params(params),
        np.ascontiguousarray(params["intercept"], dtype=np.float64),
        np.ascontiguousarray(np.diagonal(noise, axis1=1, axis2=2)),
    )


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


def shift_statistics(statistics, new_centers):
    """The same sufficient statistics, with the moments taken about ``new_centers``.

    With ``u = z - c`` and ``u' = z - c' = u + delta``, ``delta = c - c'``:
    ``s1' = s1 + s0 delta`` and ``s2' = s2 + s1 delta^T + delta s1^T + s0
    delta delta^T``.  Exact in exact arithmetic, so :func:`m_step` gives the
    same parameters from either form.

    Parameters
    ----------
    statistics : tuple
        ``(s0, s1, s2, centers)`` as taken by :func:`m_step`.
    new_centers : ndarray of shape (n_components, dim)

    Returns
    -------
    statistics : tuple
        ``(s0, s1', s2', new_centers)``.
    """
    s0, s1, s2, centers = statistics
    delta = centers - new_centers
    outer = s1[:, :, None] * delta[:, None, :]
    s2 = s2 + outer + np.swapaxes(outer, 1, 2) + s0[:, None, None] * (
        delta[:, :, None] * delta[:, None, :]
    )
    return s0, s1 + s0[:, None] * delta, s2, new_centers


def blend_statistics(running, batch, step):
    """``(1 - step) * running + step * batch``, both about the batch's centres.

    The stepwise-EM update of the per-sample sufficient statistics (Cappé &
    Moulines 2009).

    Parameters
    ----------
    running, batch : tuple
        Per-unit-weight statistics ``(s0, s1, s2, centers)``.
    step : float
        In ``(0, 1]``.

    Returns
    -------
    statistics : tuple
    """
    running = shift_statistics(running, batch[3])
    blended = tuple((1.0 - step) * old + step * new for old, new in zip(running[:3], batch[:3]))
    return (*blended, batch[3])


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
        try:
            # Checked here, so that no caller (SQUAREM's coordinates, the next
            # E-step) meets a singular noise covariance first.
            linalg.cholesky(noise[k], lower=True)
        except linalg.LinAlgError:
            raise _singular_error("noise covariance", k) from None

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
    """Unconstrained coordinates of covariances: log-Cholesky or log-variances.

    ``covariance_type="noise"`` is "full" for the expert noise covariances
    (only the error message differs).  A singular covariance raises the
    ``ValueError`` of the M-step ("... is singular ... increase reg_covar").
    """
    if covariance_type in ("diag", "spherical"):
        return np.log(covariances).ravel()
    matrices = covariances[None] if covariance_type == "tied" else covariances
    try:
        chol = np.linalg.cholesky(matrices)
    except np.linalg.LinAlgError:
        k = next((k for k, m in enumerate(matrices) if np.any(linalg.eigvalsh(m) <= 0)), 0)
        what = "noise covariance" if covariance_type == "noise" else "gate covariance"
        raise _singular_error(what, k) from None
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
            _free_covariance(params["noise_covariances"], "noise"),
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
