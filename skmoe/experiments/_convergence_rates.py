"""Convergence rates of Gaussian-gated MoE parameter estimates.

Reproduces and extends the simulation study of Nguyen, Nguyen, Nguyen & Ho
(AISTATS 2024) with EM run to convergence (the authors' EM stopped after one
step: its stopping test compared an array with itself).
"""

import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from joblib import Parallel, delayed
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..datasets import ggmoe_paper_setting, make_gaussian_gated_moe
from ..metrics import voronoi_loss, voronoi_parameter_errors
from ..mixture import GaussianGatedMoERegressor
from ..mixture._params import _PARAM_KEYS, check_moe_params
from ..utils._validation import StrictIntInterval

# The per-parameter errors of every fit (see voronoi_parameter_errors).
_COMPONENT_KEYS = tuple(
    f"{key}_{kind}"
    for key in _PARAM_KEYS
    for kind in ("exact", "atoms", "merged")
    if not (key == "weights" and kind == "atoms")
)


@validate_params(
    {
        "true_params": [dict],
        "n_components": [StrictIntInterval(1, None, closed="left")],
        "n_samples": [StrictIntInterval(1, None, closed="left")],
        "random_state": [StrictIntInterval(0, None, closed="left"), np.random.Generator, None],
    },
    prefer_skip_nested_validation=True,
)
def near_truth_start(true_params, n_components, n_samples, random_state):
    """The authors' initialisation: a noisy split of the true atoms.

    Every true atom receives at least one fitted atom (the rest are assigned
    uniformly at random), weights are split equally within a cell, means,
    slopes and intercepts get ``N(0, (0.005 n^-0.083)^2)`` noise, and the
    diagonals of the gate and noise covariances get
    ``|N(0, (0.0005 n^-0.25)^2)|`` added.

    Parameters
    ----------
    true_params : dict
        True parameters with full covariances.
    n_components : int
        Number of fitted atoms, at least the number of true atoms.
    n_samples : int
        Sample size, which sets the noise scales.
    random_state : int, numpy.random.Generator or None
        Seed or generator (a generator is used as is, so that successive
        calls continue its stream).

    Returns
    -------
    start : dict
        Parameters usable as ``init_params``.

    Raises
    ------
    ValueError
        If ``true_params`` is not a valid parameter dict with full
        covariances (missing keys, non-finite values, inconsistent shapes),
        or ``n_components`` is smaller than its number of atoms.
    """
    true_params = check_moe_params(true_params)
    n_true = len(true_params["weights"])
    if n_components < n_true:
        raise ValueError(
            f"near_truth_start needs n_components >= {n_true} (the true number)."
        )
    rng = np.random.default_rng(random_state)
    cells = np.concatenate(
        [rng.permutation(n_true), rng.integers(0, n_true, n_components - n_true)]
    )
    sizes = np.bincount(cells, minlength=n_true)
    location_sd = 0.005 * n_samples**-0.083
    scale_sd = 0.0005 * n_samples**-0.25
    start = {}
    start["weights"] = true_params["weights"][cells] / sizes[cells]
    for key in ("means", "coef", "intercept"):
        value = true_params[key][cells]
        start[key] = value + location_sd * rng.standard_normal(value.shape)
    for key in ("covariances", "noise_covariances"):
        value = true_params[key][cells].copy()
        dim = value.shape[-1]
        idx = np.arange(dim)
        value[:, idx, idx] += np.abs(scale_sd * rng.standard_normal((n_components, dim)))
        start[key] = value
    return start


def _start_of(start, truth, n_components, n_samples, rng):
    """``init_params`` and ``n_init`` for a named start."""
    if start == "near_truth":
        return near_truth_start(truth, n_components, n_samples, rng), 1
    return "kmeans", None


def _fit_once(model, n_components, n_samples, start, fit_params, data_seed, start_seed):
    """Simulate, fit and score one repetition; returns a flat dict of scalars.

    The data depend on ``data_seed`` only, so fits with different
    ``n_components`` or starts of the same repetition see the same sample
    (common random numbers make their errors directly comparable).
    """
    truth = ggmoe_paper_setting(model)
    X, y = make_gaussian_gated_moe(
        n_samples, params=truth, random_state=np.random.RandomState(data_seed)
    )
    rng = np.random.default_rng(start_seed)
    init_params, n_init = _start_of(start, truth, n_components, n_samples, rng)
    fit_params = dict(fit_params)
    tol_total = fit_params.pop("tol_total")
    if n_init is not None:
        fit_params["n_init"] = n_init
    estimator = GaussianGatedMoERegressor(
        n_components,
        init_params=init_params,
        # The estimator's tolerance is on the mean log-likelihood per sample;
        # a fixed tolerance on the total log-likelihood keeps the stopping
        # error below the statistical resolution (O(1) in total) at every n.
        tol=tol_total / n_samples,
        random_state=int(rng.integers(2**31)),
        **fit_params,
    )
    tic = perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    elapsed = perf_counter() - tic
    out = {
        "model": model,
        "n_components": n_components,
        "start": start,
        "n_samples": n_samples,
        "D1": voronoi_loss(estimator, truth, "D1"),
        "D2": voronoi_loss(estimator, truth, "D2"),
        "n_iter": int(estimator.n_iter_),
        "converged": bool(estimator.converged_),
        "log_likelihood": float(estimator.lower_bound_ * n_samples),
        "fit_time": elapsed,
    }
    errors = voronoi_parameter_errors(estimator, truth)
    out["cell_sizes"] = "-".join(str(s) for s in errors.pop("cell_sizes"))
    out.update(errors)
    return out


def _parallel(n_jobs):
    """A joblib ``Parallel`` that yields results as they come when it can.

    Backends without generator support (e.g. ``"multiprocessing"``) raise in
    the constructor for ``return_as="generator"``; they return a list, so the
    progress lines come at the end, but the results are the same.
    """
    try:
        return Parallel(n_jobs=n_jobs, return_as="generator")
    except ValueError:
        return Parallel(n_jobs=n_jobs, return_as="list")


def loglog_slope(sample_sizes, values, confidence=0.95):
    """OLS slope of ``log(values)`` on ``log(sample_sizes)`` with a t-interval.

    Parameters
    ----------
    sample_sizes : array-like of shape (n_sizes,)
    values : array-like of shape (n_sizes,)
        Positive values, e.g. mean losses over repetitions.
    confidence : float, default=0.95

    Returns
    -------
    slope : float
    interval : tuple of float
        ``(low, high)``; NaN when fewer than 3 sizes.
    """
    x = np.log(np.asarray(sample_sizes, dtype=float))
    v = np.log(np.asarray(values, dtype=float))
    fit = stats.linregress(x, v)
    if len(x) < 3:
        return float(fit.slope), (np.nan, np.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 2) * fit.stderr
    return float(fit.slope), (float(fit.slope - half), float(fit.slope + half))


@dataclass
class ConvergenceRateResult:
    """Results of :func:`convergence_rates`.

    Attributes
    ----------
    model : int
        Paper setting (1-4).
    n_components : int
        Fitted number of experts.
    init : str
        "near_truth" or "kmeans".
    sample_sizes : ndarray of shape (n_sizes,)
    values : dict of str to ndarray of shape (n_sizes, n_repetitions)
        ``"D1"``, ``"D2"``, the per-parameter errors of
        :func:`skmoe.metrics.voronoi_loss` (``return_components``),
        ``"n_iter"``, ``"converged"`` and ``"fit_time"``.
    mean_slopes : dict of str to tuple
        For every loss and error: ``(slope, (low, high))`` of the log-log
        regression of the mean over repetitions on ``n`` (95% t-interval),
        as in the paper; errors that are NaN (no cell of their kind) or zero
        in some fit are left out.
    median_slopes : dict of str to tuple
        The same for the median over repetitions, which is robust to the
        occasional spurious maximum of an over-fitted likelihood (a tiny
        component fitting a few points with an extreme slope).
    max_iter : int
        The iteration cap used; see :attr:`n_hit_max_iter`.
    """

    model: int
    n_components: int
    init: str
    sample_sizes: np.ndarray
    values: dict
    max_iter: int
    mean_slopes: dict = field(init=False)
    median_slopes: dict = field(init=False)

    def __post_init__(self):
        self.mean_slopes = {}
        self.median_slopes = {}
        for key in ("D1", "D2", *_COMPONENT_KEYS):
            for summary, target in (
                (np.mean, self.mean_slopes), (np.median, self.median_slopes)
            ):
                centre = summary(np.asarray(self.values[key], dtype=float), axis=1)
                if np.all(centre > 0):
                    target[key] = loglog_slope(self.sample_sizes, centre)

    @property
    def n_hit_max_iter(self):
        """Number of fits that stopped at ``max_iter`` without converging."""
        return int(np.sum(~self.values["converged"].astype(bool)))

    def table(self):
        """Slopes as a plain-text table.

        Returns
        -------
        text : str
        """
        lines = [f"{'quantity':<28} {'slope (mean)':>12}  95% interval      {'(median)':>8}"]
        for key, (slope, (low, high)) in self.mean_slopes.items():
            median = self.median_slopes.get(key, (np.nan,))[0]
            lines.append(
                f"{key:<28} {slope:12.3f}  [{low:6.3f}, {high:6.3f}]  {median:8.3f}"
            )
        return "\n".join(lines)


@validate_params(
    {
        "model": [StrictIntInterval(1, 4, closed="both")],
        "n_components": [StrictIntInterval(3, None, closed="left")],
        "sample_sizes": ["array-like"],
        "n_repetitions": [StrictIntInterval(1, None, closed="left")],
        "init": [StrOptions({"near_truth", "kmeans"})],
        "acceleration": [StrOptions({"squarem"}), None],
        "tol_total": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [StrictIntInterval(1, None, closed="left")],
        "n_init": [StrictIntInterval(1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": [StrictIntInterval(0, None, closed="left")],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def convergence_rates(
    model=1,
    n_components=4,
    *,
    sample_sizes=(300, 1000, 3000, 10000),
    n_repetitions=8,
    init="near_truth",
    acceleration="squarem",
    tol_total=1e-5,
    max_iter=20000,
    n_init=1,
    n_jobs=None,
    random_state=0,
    verbose=0,
):
    """Rates of convergence of the MLE in a paper setting, EM run to convergence.

    For each sample size, ``n_repetitions`` data sets are drawn from
    :func:`~skmoe.datasets.ggmoe_paper_setting` ``(model)``, a
    :class:`~skmoe.GaussianGatedMoERegressor` with ``n_components`` experts
    (3 = exact fit, more = over-fit) is fitted to convergence, and the
    Voronoi losses and per-parameter errors are recorded; log-log slopes of
    the mean over repetitions against ``n`` estimate the rates.

    Repetitions run in parallel with joblib (``n_jobs``; any joblib backend,
    e.g. dask or multiprocessing, through :func:`joblib.parallel_config`;
    backends that cannot stream results print the progress lines at the
    end).  Each repetition has
    its own seed derived from ``random_state``, so the data and starting
    points do not depend on ``n_jobs``; fitted values agree across worker
    processes up to floating-point rounding, which slowly converging
    (over-fitted) EM, stopped by a tolerance, can amplify: about 1e-3
    relative typically, but 6.5e-2 and 0.72 (one over-fitted loss at
    n=4800, on two machines) were measured between a process that compiled
    its kernels itself and workers that loaded them from numba's cache: such
    a fit can stop at another point of its flat likelihood.  Exact-fit runs
    agree to about 1e-15.

    Parameters
    ----------
    model : {1, 2, 3, 4}, default=1
        Paper setting: 1 and 3 are Type I, 2 and 4 Type II; 1 and 2 have
        ``d = 1``, 3 and 4 ``d = 2``.
    n_components : int, default=4
        Number of fitted experts (>= 3).
    sample_sizes : array-like of int, default=(300, 1000, 3000, 10000)
        Sample sizes ``n``: at least two distinct integers >= ``n_components``.
    n_repetitions : int, default=8
        Repetitions per sample size.
    init : {"near_truth", "kmeans"}, default="near_truth"
        "near_truth" is the authors' start (see :func:`near_truth_start`);
        "kmeans" starts from k-means on ``[X, y]`` like the estimator's
        default (``n_init`` restarts, the best kept), not informed by the
        truth.
    acceleration : {"squarem", None}, default="squarem"
        Passed to the estimator; over-fitted EM is sublinear without it.
    tol_total : float, default=1e-5
        EM tolerance on the change of the *total* log-likelihood per step
        (the estimator gets ``tol = tol_total / n``), so that the stopping
        error stays below the statistical resolution at every ``n``.
    max_iter : int, default=20000
        EM iteration cap; fits reaching it are counted in
        ``n_hit_max_iter``.
    n_init : int, default=1
        Restarts of the k-means start (ignored by "near_truth").
    n_jobs : int, default=None
        Parallel jobs over repetitions (joblib semantics).
    random_state : int, default=0
        Master seed.
    verbose : int, default=0
        If positive, print one line per sample size as it completes.

    Returns
    -------
    result : ConvergenceRateResult
        Arrays of losses, errors, iteration counts, fit times and log-log
        slopes with confidence intervals.

    Examples
    --------
    >>> from skmoe.experiments import convergence_rates
    >>> res = convergence_rates(1, 3, sample_sizes=[200, 800], n_repetitions=2)
    >>> res.values["D1"].shape
    (2, 2)
    """
    sizes = np.asarray(sample_sizes)
    if (
        sizes.ndim != 1
        or sizes.dtype.kind not in "iuf"
        or not np.all(np.isfinite(sizes))
        or np.any(sizes != np.round(sizes))
        or np.any(sizes < n_components)
        or np.unique(sizes).size < 2
    ):
        raise ValueError(
            "sample_sizes must be a 1-D sequence of at least two distinct integers "
            f">= n_components={n_components} (a log-log slope needs two sizes), got "
            f"{sample_sizes!r}."
        )
    sample_sizes = sizes.astype(int)
    seeds = np.random.SeedSequence(random_state).spawn(len(sample_sizes) * n_repetitions)
    fit_params = {"tol_total": tol_total, "max_iter": max_iter,
                  "acceleration": acceleration, "n_init": n_init}
    tasks = [
        delayed(_fit_once)(
            model, n_components, int(n), init, fit_params,
            int(seeds[s * n_repetitions + r].generate_state(1)[0]),
            seeds[s * n_repetitions + r].spawn(1)[0],
        )
        for s, n in enumerate(sample_sizes)
        for r in range(n_repetitions)
    ]
    start = perf_counter()
    results = []
    for out in _parallel(n_jobs)(tasks):
        results.append(out)
        if verbose and len(results) % n_repetitions == 0:
            block = results[-n_repetitions:]
            n = sample_sizes[len(results) // n_repetitions - 1]
            hit = sum(not b["converged"] for b in block)
            print(
                f"[model {model}, K={n_components}] n={n:>7}: mean D1 "
                f"{np.mean([b['D1'] for b in block]):.4g}, mean EM passes "
                f"{np.mean([b['n_iter'] for b in block]):.0f}, hit max_iter "
                f"{hit}/{n_repetitions}, elapsed {perf_counter() - start:.1f} s",
                flush=True,
            )
    keys = [key for key, value in results[0].items() if not isinstance(value, str)]
    values = {
        key: np.array([r[key] for r in results]).reshape(len(sample_sizes), n_repetitions)
        for key in keys
    }
    return ConvergenceRateResult(
        model=model,
        n_components=n_components,
        init=init,
        sample_sizes=sample_sizes,
        values=values,
        max_iter=max_iter,
    )
