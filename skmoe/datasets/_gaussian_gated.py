"""Sampler for the Gaussian-gated mixture of experts."""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ..mixture._params import check_moe_params, sample_moe
from ..utils._validation import StrictIntInterval, check_finite_output


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
        "n_samples": [StrictIntInterval(1, None, closed="left")],
        "n_features": [StrictIntInterval(1, None, closed="left")],
        "n_components": [StrictIntInterval(1, None, closed="left")],
        "n_outputs": [StrictIntInterval(1, None, closed="left")],
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
        # noise**2 (a Python float) raises OverflowError past ~1.3e154; the
        # variance itself must be a finite float64.
        if noise > np.sqrt(np.finfo(np.float64).max):
            raise ValueError(
                f"noise={noise!r} is too large: the noise variance noise**2 overflows "
                "float64. Use a noise standard deviation below 1e154 (rescale the "
                "problem)."
            )
        params = _random_params(n_features, n_components, n_outputs, separation, noise, rng)
    params = check_moe_params(params, covariance_type="full")
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        X, Y, labels = sample_moe(params, n_samples, rng)
    hint = "The parameters are too large in magnitude for float64: rescale them."
    check_finite_output(X, "sampled X", hint=hint)
    check_finite_output(Y, "sampled y", hint=hint)
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


# The four simulation settings of Nguyen, Nguyen, Nguyen & Ho (AISTATS 2024),
# as used in the authors' code (CRPE-GMoE, commit e04efe2): k* = 3 experts,
# one output.  The numbers are the code's, which adapts the bivariate example
# of Ho & Nguyen (2016) with small slips; they are the ground truth there.
_PAPER_WEIGHTS = (0.3, 0.4, 0.3)
_PAPER_GATE_VARIANCES = (0.042824, 0.0175, 0.01)
_PAPER_SLOPES = (0.404540, -0.714286, 0.0)
_PAPER_TYPE1 = {"intercept": (0.340454, -0.328571, 0.2), "noise": (0.008877, 0.026429, 0.0175)}
_PAPER_TYPE2 = {"intercept": (0.3, -0.328571, 0.2), "noise": (0.001168, 0.026429, 0.0175)}
_PAPER_MODELS = {
    1: {"means": (-0.1, 0.1, 0.5), "n_features": 1, **_PAPER_TYPE1},
    2: {"means": (0.0, 0.1, 0.5), "n_features": 1, **_PAPER_TYPE2},
    3: {"means": (-0.1, 0.1, 0.5), "n_features": 2, **_PAPER_TYPE1},
    4: {"means": (0.0, 0.1, 0.5), "n_features": 2, **_PAPER_TYPE2},
}


@validate_params(
    {"model": [StrictIntInterval(1, 4, closed="both")]},
    prefer_skip_nested_validation=True,
)
def ggmoe_paper_setting(model):
    """True parameters of the four benchmark models of Nguyen et al. (2024).

    ============  ======  ===  ==========================================
    ``model``     type    d    gate means
    ============  ======  ===  ==========================================
    1             I       1    -0.1, 0.1, 0.5
    2             II      1    0, 0.1, 0.5
    3             I       2    (-0.1,-0.1), (0.1,0.1), (0.5,0.5)
    4             II      2    (0,0), (0.1,0.1), (0.5,0.5)
    ============  ======  ===  ==========================================

    All models have weights (0.3, 0.4, 0.3), gate covariances
    (0.042824, 0.0175, 0.01) times the identity and slopes
    (0.404540, -0.714286, 0) times a vector of ones; Type I (models 1 and 3)
    has every gate mean non-zero, Type II (models 2 and 4) has one at zero.
    The values are those of the authors' simulation code.

    Parameters
    ----------
    model : {1, 2, 3, 4}
        Which setting.

    Returns
    -------
    params : dict
        ``"weights"``, ``"means"``, ``"covariances"`` (full), ``"coef"``,
        ``"intercept"`` and ``"noise_covariances"``, usable as the ``params``
        of :func:`make_gaussian_gated_moe`, as ``init_params`` of
        :class:`~skmoe.GaussianGatedMoERegressor` (with three components) and
        as the truth of :func:`skmoe.metrics.voronoi_loss`.

    Examples
    --------
    >>> from skmoe.datasets import ggmoe_paper_setting, make_gaussian_gated_moe
    >>> truth = ggmoe_paper_setting(2)
    >>> truth["means"].ravel()
    array([0. , 0.1, 0.5])
    >>> X, y = make_gaussian_gated_moe(1000, params=truth, random_state=0)
    """
    spec = _PAPER_MODELS[model]
    d = spec["n_features"]
    ones = np.ones(d)
    return check_moe_params(
        {
            "weights": np.array(_PAPER_WEIGHTS),
            "means": np.outer(spec["means"], ones),
            "covariances": np.array([v * np.eye(d) for v in _PAPER_GATE_VARIANCES]),
            "coef": np.array([[a * ones] for a in _PAPER_SLOPES]),
            "intercept": np.array(spec["intercept"])[:, None],
            "noise_covariances": np.array(spec["noise"])[:, None, None],
        }
    )
