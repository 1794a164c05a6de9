"""Latent-cluster single-index regression (Kawata et al., ICML 2025)."""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ..utils._numba_math import hermite_basis
from ..utils._validation import StrictIntInterval, check_finite_output


def _default_signs(n_clusters):
    """Alternating +1/-1, centred so that the signs sum to zero."""
    signs = np.where(np.arange(n_clusters) % 2 == 0, 1.0, -1.0)
    return signs - signs.mean()


@validate_params(
    {
        "n_samples": [StrictIntInterval(1, None, closed="left")],
        "n_features": [StrictIntInterval(1, None, closed="left")],
        "n_clusters": [StrictIntInterval(2, None, closed="left")],
        "information_exponent": [StrictIntInterval(1, None, closed="left")],
        "degree": [StrictIntInterval(1, None, closed="left"), None],
        "separation": [Interval(Real, 0, None, closed="left")],
        "global_signs": ["array-like", None],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "return_truth": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_latent_cluster_regression(
    n_samples,
    n_features,
    *,
    n_clusters=2,
    information_exponent=3,
    degree=None,
    separation=3.0,
    global_signs=None,
    noise=0.0,
    random_state=None,
    return_truth=False,
):
    """Regression data with latent clusters, local tasks and a cancelling global task.

    The model of Kawata et al. (ICML 2025): a cluster ``c`` is drawn uniformly
    from ``{0, ..., C-1}``, then

    .. math::

        x \\mid c \\sim \\mathcal N(\\rho v_c, I_d), \\qquad
        y = f^*_c(w_c^\\top x) + s_c\\, g^*(w_g^\\top x) + \\nu,
        \\quad \\nu \\sim \\mathcal N(0, \\zeta^2),

    with ``sum_c s_c = 0``, so the global task's signal along ``w_g`` cancels
    in the pooled data.  The links are expansions in the normalised Hermite
    polynomials ``h_i = He_i / sqrt(i!)`` starting at the information
    exponent ``k``: ``f*_c = sum_{i=k}^p beta_{c,i} h_i`` and
    ``g* = sum_{i=k}^p gamma_i h_i``, with ``beta_{c,k} = gamma_k = 1`` and,
    for ``i > k``, coefficients drawn from ``N(0, 1/4)``.

    The ``2C + 1`` directions ``v_c``, ``w_c`` and ``w_g`` are mutually
    orthonormal (a random orthonormal frame), so within each cluster
    ``w_c^T x`` and ``w_g^T x`` are independent standard normals.  Hence,
    exactly, ``E[y h_k(w_g^T x) | c] = s_c``, ``E[y h_k(w_g^T x)] = 0`` and
    ``E[y h_k(w_c^T x)] = 1 / C``.

    Read more in the :ref:`User Guide <sgd_moe>`.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    n_features : int
        Input dimension ``d``; at least ``2 * n_clusters + 1``.
    n_clusters : int, default=2
        Number of clusters ``C``.
    information_exponent : int, default=3
        Index ``k`` of the first non-zero Hermite coefficient of every link.
    degree : int, default=None
        Polynomial degree ``p >= k`` of the links; ``None`` means ``k``
        (pure ``h_k`` links).
    separation : float, default=3.0
        Norm ``rho`` of the cluster means ``rho v_c``.  The targets grow like
        ``rho ** p``, so ``rho`` must stay well below ``1e308 ** (1 / p)``
        (see Raises).
    global_signs : array-like of shape (n_clusters,), default=None
        Signs ``s_c`` of the global task per cluster; must sum to zero.
        ``None`` gives alternating ``+1, -1`` (centred when ``C`` is odd).
    noise : float, default=0.0
        Standard deviation ``zeta`` of the additive Gaussian noise.
    random_state : int, RandomState instance or None, default=None
        Seed for the directions, the link coefficients and the samples.
    return_truth : bool, default=False
        Also return a dict with the ground truth.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    truth : dict
        Only if ``return_truth`` is True.  Keys: ``"labels"`` (n_samples,)
        cluster of each row; ``"cluster_means"`` (C, d) unit vectors
        ``v_c``; ``"separation"`` ``rho``; ``"cluster_directions"`` (C, d)
        ``w_c``; ``"global_direction"`` (d,) ``w_g``; ``"global_signs"``
        (C,) ``s_c``; ``"cluster_link_coef"`` (C, p + 1) and
        ``"global_link_coef"`` (p + 1,) Hermite coefficients (zero below
        ``k``); ``"information_exponent"``; ``"noise"``.

    Raises
    ------
    ValueError
        If the generated inputs or targets are not finite: ``separation``,
        ``noise`` or ``global_signs`` too large for floating point.

    See Also
    --------
    skmoe.SGDMoERegressor : Mixture of experts that learns this structure.

    Examples
    --------
    >>> from skmoe.datasets import make_latent_cluster_regression
    >>> X, y, truth = make_latent_cluster_regression(
    ...     100, 10, return_truth=True, random_state=0)
    >>> X.shape, y.shape, truth["cluster_directions"].shape
    ((100, 10), (100,), (2, 10))
    >>> truth["global_signs"]
    array([ 1., -1.])
    """
    C, d, k = n_clusters, n_features, information_exponent
    p = k if degree is None else degree
    if p < k:
        raise ValueError(f"degree={p} must be at least information_exponent={k}.")
    if d < 2 * C + 1:
        raise ValueError(
            f"n_features={d} is too small: the 2 * n_clusters + 1 = {2 * C + 1} "
            "directions v_c, w_c and w_g must be mutually orthonormal."
        )
    if global_signs is None:
        signs = _default_signs(C)
    else:
        signs = np.asarray(global_signs, dtype=np.float64)
        if signs.shape != (C,):
            raise ValueError(
                f"global_signs must have shape (n_clusters,) = ({C},), got {signs.shape}."
            )
        if not np.all(np.isfinite(signs)):
            raise ValueError("global_signs must be finite.")
        if abs(signs.sum()) > 1e-10 * max(1.0, np.abs(signs).max()):
            raise ValueError(f"global_signs must sum to zero, got sum {signs.sum():.6g}.")

    rng = check_random_state(random_state)
    frame, _ = np.linalg.qr(rng.standard_normal((d, 2 * C + 1)))
    frame = frame.T
    means, directions, global_direction = frame[:C], frame[C : 2 * C], frame[2 * C]
    beta = np.zeros((C, p + 1))
    gamma = np.zeros(p + 1)
    beta[:, k] = 1.0
    gamma[k] = 1.0
    if p > k:
        beta[:, k + 1 :] = 0.5 * rng.standard_normal((C, p - k))
        gamma[k + 1 :] = 0.5 * rng.standard_normal(p - k)

    labels = rng.randint(C, size=n_samples)
    # Overflow is detected below, with a clear error, not warned about here.
    with np.errstate(over="ignore", invalid="ignore"):
        X = separation * means[labels] + rng.standard_normal((n_samples, d))
        local = np.einsum(
            "ni,ni->n", hermite_basis(np.einsum("nd,nd->n", X, directions[labels]), p),
            beta[labels],
        )
        y = local + signs[labels] * (hermite_basis(X @ global_direction, p) @ gamma)
        if noise > 0:
            y += noise * rng.standard_normal(n_samples)
    # The targets are degree-p polynomials of x, whose norm grows like
    # separation: a huge separation (or noise, or global signs) overflows.
    hint = (
        "separation, noise or global_signs is too large for floating point: "
        f"the targets grow like separation ** degree (degree={p}); use values "
        "well below 1e308 ** (1 / degree)."
    )
    check_finite_output(X, "generated input X", hint=hint)
    check_finite_output(y, "generated target y", hint=hint)
    if not return_truth:
        return X, y
    truth = {
        "labels": labels,
        "cluster_means": means,
        "separation": float(separation),
        "cluster_directions": directions,
        "global_direction": global_direction,
        "global_signs": signs,
        "cluster_link_coef": beta,
        "global_link_coef": gamma,
        "information_exponent": int(k),
        "noise": float(noise),
    }
    return X, y, truth
