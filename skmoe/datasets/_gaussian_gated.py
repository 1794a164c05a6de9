"""Sampler for the Gaussian-gated mixture of experts."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from .._gaussian_gated import check_moe_params, sample_moe


def _random_params(n_features, n_components, n_outputs, separation, noise, random_state):
    """Random true parameters: well-spread means, random SPD covariances."""
    weights = random_state.dirichlet(np.full(n_components, 5.0))
    means = separation * random_state.standard_normal((n_components, n_features))
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        q, _ = np.linalg.qr(random_state.standard_normal((n_features, n_features)))
        covariances[k] = (q * random_state.uniform(0.5, 1.5, n_features)) @ q.T
    return {
        "weights": weights,
        "means": means,
        "covariances": covariances,
        "coef": random_state.standard_normal((n_components, n_outputs, n_features)),
        "intercept": random_state.standard_normal((n_components, n_outputs)),
        "noise_covariances": np.tile(noise**2 * np.eye(n_outputs), (n_components, 1, 1)),
    }


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_outputs": [Interval(Integral, 1, None, closed="left")],
        "params": [dict, None],
        "separation": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="neither")],
        "shuffle": ["boolean"],
        "return_labels": ["boolean"],
        "return_params": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_gaussian_gated_moe(
    n_samples=1000,
    n_features=2,
    *,
    n_components=3,
    n_outputs=1,
    params=None,
    separation=3.0,
    noise=0.1,
    shuffle=True,
    return_labels=False,
    return_params=False,
    random_state=None,
):
    """Sample regression data from a Gaussian-gated mixture of experts.

    Draws ``(x, y)`` from the joint model ``sum_k pi_k N(x | mu_k, Sigma_k)
    N(y | A_k x + b_k, S_k)``, either for given parameters or for random ones.
    The sampler is vectorised per component (10^6 rows take well under a
    second).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows.
    n_features : int, default=2
        Input dimension; ignored if ``params`` is given.
    n_components : int, default=3
        Number of experts; ignored if ``params`` is given.
    n_outputs : int, default=1
        Output dimension; ignored if ``params`` is given.
    params : dict, default=None
        True parameters with keys ``"weights"``, ``"means"``,
        ``"covariances"`` (full, shape (K, d, d)), ``"coef"`` (K, p, d),
        ``"intercept"`` (K, p) and ``"noise_covariances"`` (K, p, p).  If None,
        random parameters are drawn: Dirichlet(5) weights, means
        ``N(0, separation^2 I)``, covariances with eigenvalues in [0.5, 1.5],
        standard normal slopes and intercepts, noise ``noise^2 I``.
    separation : float, default=3.0
        Scale of the random gate means (only when ``params`` is None).
    noise : float, default=0.1
        Noise standard deviation of the random experts (only when ``params``
        is None).
    shuffle : bool, default=True
        Shuffle the rows; otherwise they are grouped by component.
    return_labels : bool, default=False
        Also return the component of each row.
    return_params : bool, default=False
        Also return the true parameters (validated float64 copies).
    random_state : int, RandomState instance or None, default=None
        Seed for the parameters and the samples.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Targets; 1-D when there is one output.
    labels : ndarray of shape (n_samples,)
        Component of each row; only if ``return_labels`` is True.
    params : dict
        True parameters; only if ``return_params`` is True.

    Examples
    --------
    >>> from skmoe.datasets import make_gaussian_gated_moe
    >>> X, y, labels = make_gaussian_gated_moe(
    ...     n_samples=5, n_features=3, return_labels=True, random_state=0)
    >>> X.shape, y.shape, labels.shape
    ((5, 3), (5,), (5,))
    """
    rng = check_random_state(random_state)
    if params is None:
        params = _random_params(n_features, n_components, n_outputs, separation, noise, rng)
    params = check_moe_params(params, covariance_type="full")
    X, Y, labels = sample_moe(params, n_samples, rng)
    if shuffle:
        order = rng.permutation(n_samples)
        X, Y, labels = X[order], Y[order], labels[order]
    y = Y[:, 0] if Y.shape[1] == 1 else Y
    result = (X, y)
    if return_labels:
        result += (labels,)
    if return_params:
        result += (params,)
    return result
