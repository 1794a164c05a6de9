"""Shared fixtures for the skmoe asv suite.

The datasets and starting points defined here are part of the benchmark
definitions: changing them changes what every recorded result means, so
existing helpers and constants must never be changed, only new ones appended.

Nothing in this module is collected by asv (no ``time_``/``peakmem_``/
``track_`` names at module level).
"""

import functools
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

# --------------------------------------------------------------------------
# Fixed problem sizes
# --------------------------------------------------------------------------

#: The reference EM problem: n=200k rows, d=8 inputs, K=6 experts, 1 output.
EM_N_SAMPLES = 200_000
EM_N_FEATURES = 8
EM_N_COMPONENTS = 6
EM_RANDOM_STATE = 0

#: Fixed number of EM iterations timed per fit (``tol=0``, so never fewer).
EM_N_ITER = 5

#: Sampler benchmark: 10^6 rows in 2 dimensions, 3 components.
SAMPLER_N_SAMPLES = 1_000_000
SAMPLER_N_FEATURES = 2
SAMPLER_N_COMPONENTS = 3

#: Rows used to warm the numba caches (compile once, never timed).
WARMUP_N_SAMPLES = 1_000


class Benchmark:
    """Base class: attributes shared by every skmoe benchmark.

    Heavy classes override ``repeat``/``warmup_time``.  The numba kernels run
    on all cores (numba's default thread count) and scikit-learn uses the
    BLAS threads it finds; neither is pinned, as in normal use.
    """

    timeout = 300


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def gaussian_gated_dataset(n_samples, n_features, n_components, random_state, dtype="float64"):
    """``(X, y)`` from :func:`skmoe.datasets.make_gaussian_gated_moe`.

    Cached per process; callers must not modify the returned arrays.
    """
    from skmoe.datasets import make_gaussian_gated_moe

    X, y = make_gaussian_gated_moe(
        n_samples, n_features, n_components=n_components, random_state=random_state
    )
    return X.astype(dtype, copy=False), y.astype(dtype, copy=False)


def em_starting_point(X, y, n_components, random_state):
    """A fixed, data-dependent EM starting point in skmoe's parametrisation.

    Gate means are ``n_components`` distinct rows of ``X`` drawn with
    ``numpy.random.RandomState(random_state)``; every gate covariance is the
    covariance of ``X``; every expert is the global least-squares fit of
    ``y`` on ``X`` with its residual variance; the weights are uniform.  It
    is computed with NumPy only, so it does not change when skmoe's or
    scikit-learn's own initialisation does.

    Returns
    -------
    params : dict
        Keys ``weights``, ``means``, ``covariances`` (K, d, d), ``coef``
        (K, 1, d), ``intercept`` (K, 1) and ``noise_covariances`` (K, 1, 1),
        all float64.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
    n_samples, n_features = X.shape
    rng = np.random.RandomState(random_state)
    rows = rng.choice(n_samples, size=n_components, replace=False)

    x_mean = X.mean(axis=0)
    y_mean = y.mean(axis=0)
    Xc = X - x_mean
    yc = y - y_mean
    cov_x = Xc.T @ Xc / n_samples
    slope = np.linalg.solve(cov_x, Xc.T @ yc / n_samples).T  # (p, d)
    residual = yc - Xc @ slope.T
    noise = residual.T @ residual / n_samples

    return {
        "weights": np.full(n_components, 1.0 / n_components),
        "means": X[rows].copy(),
        "covariances": np.repeat(cov_x[None], n_components, axis=0),
        "coef": np.repeat(slope[None], n_components, axis=0),
        "intercept": np.repeat((y_mean - slope @ x_mean)[None], n_components, axis=0),
        "noise_covariances": np.repeat(noise[None], n_components, axis=0),
    }


def to_gaussian_mixture_init(params):
    """Map skmoe parameters to a full-covariance mixture on ``[X, y]``.

    Component ``k`` of the joint model is ``N([x, y] | m_k, C_k)`` with
    ``m_k = (mu_k, A_k mu_k + b_k)`` and
    ``C_k = [[Sigma_k, Sigma_k A_k^T], [A_k Sigma_k, S_k + A_k Sigma_k A_k^T]]``.

    Returns
    -------
    init : dict
        ``weights_init``, ``means_init`` and ``precisions_init`` for
        :class:`sklearn.mixture.GaussianMixture` (``covariance_type="full"``).
    """
    weights = np.asarray(params["weights"], dtype=np.float64)
    mu = np.asarray(params["means"], dtype=np.float64)
    sigma = np.asarray(params["covariances"], dtype=np.float64)
    coef = np.asarray(params["coef"], dtype=np.float64)
    intercept = np.asarray(params["intercept"], dtype=np.float64)
    noise = np.asarray(params["noise_covariances"], dtype=np.float64)
    n_components, n_features = mu.shape
    dim = n_features + coef.shape[1]

    means = np.hstack([mu, np.einsum("kpd,kd->kp", coef, mu) + intercept])
    precisions = np.empty((n_components, dim, dim))
    for k in range(n_components):
        cross = coef[k] @ sigma[k]  # A Sigma, shape (p, d)
        joint = np.empty((dim, dim))
        joint[:n_features, :n_features] = sigma[k]
        joint[n_features:, :n_features] = cross
        joint[:n_features, n_features:] = cross.T
        joint[n_features:, n_features:] = noise[k] + cross @ coef[k].T
        precision = np.linalg.inv(joint)
        precisions[k] = 0.5 * (precision + precision.T)
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


# --------------------------------------------------------------------------
# Estimators with a fixed amount of work
# --------------------------------------------------------------------------


def skmoe_em(init_params, max_iter):
    """GaussianGatedMoERegressor running exactly ``max_iter`` EM iterations."""
    from skmoe import GaussianGatedMoERegressor

    return GaussianGatedMoERegressor(
        n_components=len(init_params["weights"]),
        covariance_type="full",
        tol=0.0,
        max_iter=max_iter,
        n_init=1,
        init_params=init_params,
        random_state=0,
    )


def sklearn_gmm_em(gmm_init, max_iter):
    """GaussianMixture('full') running exactly ``max_iter`` EM iterations."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(
        n_components=len(gmm_init["weights_init"]),
        covariance_type="full",
        tol=0.0,
        max_iter=max_iter,
        n_init=1,
        random_state=0,
        **gmm_init,
    )


def fit_quietly(estimator, *args):
    """``estimator.fit(*args)`` with ConvergenceWarning silenced (tol=0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args)


def warm_up_skmoe(dtype="float64"):
    """Compile (or load from the numba cache) every skmoe kernel for ``dtype``.

    Runs fit, predict, predict_gates and score on a tiny problem with the
    same array types as the benchmarks, so JIT compilation is never timed.
    """
    X, y = gaussian_gated_dataset(
        WARMUP_N_SAMPLES, EM_N_FEATURES, EM_N_COMPONENTS, EM_RANDOM_STATE, dtype
    )
    params = em_starting_point(X, y, EM_N_COMPONENTS, EM_RANDOM_STATE)
    model = fit_quietly(skmoe_em(params, 2), X, y)
    model.predict(X)
    model.predict(X, return_std=True)
    model.predict_gates(X)
    model.score(X, y)


# --------------------------------------------------------------------------
# Measurement helpers for track_ benchmarks
# --------------------------------------------------------------------------


def seconds_per_em_iteration(candidates, n_iter=EM_N_ITER, repeat=3):
    """Marginal wall time of one EM iteration, for one or more estimators.

    For each candidate, ``(T(1 + n_iter) - T(1)) / n_iter`` where ``T(m)`` is
    the best of ``repeat`` fits with ``max_iter=m`` from the same starting
    point.  The difference cancels the per-fit overhead (input validation,
    parameter set-up, the final likelihood or E-step pass), leaving the cost
    of E-step + M-step.  The fits of all candidates are interleaved, so that
    a change in machine load affects them alike.

    Parameters
    ----------
    candidates : dict
        ``name -> (make_estimator, fit_args)`` where ``make_estimator(m)``
        returns an unfitted estimator running exactly ``m`` iterations.
    n_iter : int
    repeat : int

    Returns
    -------
    seconds : dict
        ``name -> seconds per EM iteration``.
    """
    best = {name: [np.inf, np.inf] for name in candidates}
    for _ in range(repeat):
        for name, (make_estimator, fit_args) in candidates.items():
            for slot, max_iter in enumerate((1, 1 + n_iter)):
                estimator = make_estimator(max_iter)
                start = time.perf_counter()
                fit_quietly(estimator, *fit_args)
                elapsed = time.perf_counter() - start
                best[name][slot] = min(best[name][slot], elapsed)
    return {name: (full - base) / n_iter for name, (base, full) in best.items()}


def _proc_status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_rss_increase(func):
    """Bytes by which the resident set grows above its level before ``func()``.

    Linux only: the process high-water mark is reset through
    ``/proc/self/clear_refs`` before the call, so, unlike ``peakmem_*``, the
    result excludes the interpreter, imports and set-up.  Returns NaN where
    that is not available.
    """
    if not sys.platform.startswith("linux"):
        return float("nan")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _proc_status_kib("VmRSS")
    except (OSError, KeyError):
        return float("nan")
    func()
    return float(max(0, _proc_status_kib("VmHWM") - before) * 1024)



# --------------------------------------------------------------------------
# Array-API / GPU problem (appended)
# --------------------------------------------------------------------------

#: One EM iteration at the issue's GPU scale: n=2e6 rows, d=16, K=16.
GPU_EM_N_SAMPLES = 2_000_000
GPU_EM_N_FEATURES = 16
GPU_EM_N_COMPONENTS = 16


class ArrayAPIDispatchFit:
    """``estimator.fit`` under ``array_api_dispatch=True`` (for device arrays).

    Exposes ``fit`` only, so that it can stand in for an estimator in
    :func:`seconds_per_em_iteration`.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, *args):
        import sklearn

        with sklearn.config_context(array_api_dispatch=True):
            return self.estimator.fit(*args)


# --------------------------------------------------------------------------
# Mixture of MLPs (appended)
# --------------------------------------------------------------------------

#: MoMLP reference problem: inputs uniform on [0, 1]^2, 20k training rows,
#: 200k rows to predict, 16 experts of two hidden layers of width 32.
MOMLP_N_TRAIN = 20_000
MOMLP_N_PREDICT = 200_000
MOMLP_N_FEATURES = 2
MOMLP_N_EXPERTS = 16
MOMLP_HIDDEN = (32, 32)
MOMLP_RANDOM_STATE = 0


def momlp_dataset(n_samples, random_state):
    """``(X, y)``: ``X`` uniform on [0, 1]^2, ``y = sin(6 x1) cos(6 x2) + |x1 - x2|``."""
    rng = np.random.RandomState(random_state)
    X = rng.uniform(size=(n_samples, MOMLP_N_FEATURES))
    y = np.sin(6 * X[:, 0]) * np.cos(6 * X[:, 1]) + np.abs(X[:, 0] - X[:, 1])
    return X, y


def mlp_width_for_parameters(n_parameters, n_features, n_layers=2):
    """Width ``W`` of an ``n_layers``-layer MLPRegressor with about ``n_parameters``.

    Solves ``(n_features + 1) W + (n_layers - 1) (W^2 + W) + W + 1 = n_parameters``.
    """
    a = n_layers - 1
    b = n_features + 1 + (n_layers - 1) + 1
    c = 1 - n_parameters
    return int(round((-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)))


def warm_up_momlp():
    """Compile (or load) the MoMLP kernels on a tiny problem."""
    from skmoe import MixtureOfMLPsRegressor

    X, y = momlp_dataset(500, 1)
    model = fit_quietly(
        MixtureOfMLPsRegressor(4, hidden_layer_sizes=MOMLP_HIDDEN, max_iter=2, random_state=0),
        X,
        y,
    )
    model.predict(X)
