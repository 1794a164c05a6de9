"""EM skeleton of the Gaussian-gated MoE, in the shape of ``sklearn.mixture._base``.

:class:`BaseMixtureEM` owns everything that does not depend on the model:
the ``n_init`` loop and the choice of the best initialisation, ``warm_start``,
the initialisation schemes on the responsibilities (bounded memory:
:func:`initial_statistics`), row weights (:func:`check_em_sample_weight`),
the EM loop (plain, or accelerated by :func:`skmoe.mixture._squarem.squarem`)
with one :class:`~skmoe.utils._monitor.ConvergenceMonitor` per
initialisation, stepwise EM for ``partial_fit``, the final pass and the
bookkeeping (``converged_``, ``n_iter_``, ``lower_bound_``, ``lower_bounds_``,
``history_``, ``n_batch_iter_``).  ``fit`` and ``partial_fit`` are atomic
(:func:`skmoe.utils._validation.fit_context`).  Subclasses provide the model
through a few hooks (validation, initial parameters, E-step statistics,
M-step, fitted state, SQUAREM vector maps).
"""

# The skeleton (initialisation schemes, n_init/warm_start logic) follows
# sklearn.mixture._base.BaseMixture (BSD-3-Clause).

from abc import ABCMeta, abstractmethod
from numbers import Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight

from ..utils._array_api import device, from_numpy, to_numpy
from ..utils._dask import align_row_blocks, is_dask_array, sample_rows
from ..utils._monitor import ConvergenceMonitor
from ..utils._validation import StrictIntInterval, check_min_samples, fit_context
from ._init_numba import label_moments, soft_moments
from ._params import blend_statistics
from ._passes import get_backend, input_namespace
from ._squarem import squarem


#: Initialisation schemes of the responsibilities (as GaussianMixture's).
INIT_SCHEMES = ("kmeans", "k-means++", "random", "random_from_data")


def _per_unit_weight(statistics, weight):
    """Sufficient statistics ``(s0, s1, s2, centers)`` divided by the total weight."""
    s0, s1, s2, centers = statistics
    return s0 / weight, s1 / weight, s2 / weight, centers


def _rows_of_z(X, Y, rows=None):
    """Host float64 ``[X, Y]`` restricted to ``rows`` (all rows if None)."""
    if rows is not None:
        X, Y = X[rows], Y[rows]
    return np.hstack([to_numpy(X), to_numpy(Y)]).astype(np.float64, copy=False)


def initial_statistics(
    X, Y, n_components, init_params, random_state, sample_weight=None, init_sample_size=None
):
    """Sufficient statistics of the starting responsibilities, as GaussianMixture draws them.

    The schemes are GaussianMixture's, on ``z = [x, y]``.  With the same
    ``random_state`` and ``n_samples <= init_sample_size`` they draw exactly
    what GaussianMixture draws.  Memory stays bounded for large inputs:

    - "kmeans" and "k-means++" run on a uniform random sample of
      ``init_sample_size`` rows (drawn first from ``random_state``) when
      there are more rows;
    - the one-hot responsibilities of "kmeans" become moments in one pass
      over ``X`` and ``Y`` (:func:`skmoe.mixture._init_numba.label_moments`:
      every row is labelled by its nearest k-means centre), with no
      ``[X, Y]`` copy and no ``(n_samples, n_components)`` matrix;
    - "random_from_data" and "k-means++" give each component a single row;
    - "random" draws the ``(n_samples, n_components)`` responsibilities that
      GaussianMixture draws, and reduces them in one pass
      (:func:`skmoe.mixture._init_numba.soft_moments`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        Host arrays (NumPy or memmap), float32 or float64.
    n_components : int
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    random_state : numpy.random.RandomState
    sample_weight : ndarray of shape (n_samples,), default=None
        Row weights: they weigh the moments, k-means and k-means++ take
        them, and "random_from_data" draws rows with probability
        proportional to them (never a row of weight zero).
    init_sample_size : int or None, default=None
        Largest number of rows k-means and k-means++ run on.

    Returns
    -------
    s0, s1, s2, centers
        As taken by :func:`skmoe.mixture._params.m_step`.
    """
    n_samples = X.shape[0]
    dim = X.shape[1] + Y.shape[1]
    rows = None
    if (
        init_params in ("kmeans", "k-means++")
        and init_sample_size is not None
        and n_samples > init_sample_size
    ):
        rows = np.sort(random_state.choice(n_samples, size=init_sample_size, replace=False))
    weight_of_rows = sample_weight
    if rows is not None and sample_weight is not None:
        weight_of_rows = sample_weight[rows]

    if init_params == "kmeans":
        kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
        kmeans.fit(_rows_of_z(X, Y, rows), sample_weight=weight_of_rows)
        centers = kmeans.cluster_centers_
        # On the whole data, k-means' own labels; on a sample, the nearest
        # centre of every row (what k-means would assign them).
        labels = kmeans.labels_ if rows is None else None
        return (*label_moments(X, Y, centers, labels, sample_weight), centers)
    if init_params == "random":
        resp = random_state.uniform(size=(n_samples, n_components))
        resp /= resp.sum(axis=1)[:, np.newaxis]
        return soft_moments(X, Y, resp, sample_weight)
    if init_params == "random_from_data":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        indices = random_state.choice(n_samples, size=n_components, replace=False, p=p)
    else:  # "k-means++"
        _, indices = kmeans_plusplus(
            _rows_of_z(X, Y, rows), n_components, sample_weight=weight_of_rows,
            random_state=random_state,
        )
        if rows is not None:
            indices = rows[indices]
    # One row per component: its moments are about the row itself.
    s0 = np.ones(n_components) if sample_weight is None else sample_weight[indices]
    return (
        s0,
        np.zeros((n_components, dim)),
        np.zeros((n_components, dim, dim)),
        _rows_of_z(X, Y, indices),
    )


def check_em_sample_weight(sample_weight, X, n_components):
    """Validated row weights of an EM fit, or None when they change nothing.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
    X : array of shape (n_samples, n_features)
        The validated inputs (any namespace).
    n_components : int

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,) or None
        Host float64 weights; None if ``sample_weight`` is None or constant,
        because the EM fixed point, the mean log-likelihood and every
        initialisation only depend on the weights up to a common factor (so
        unit weights give exactly the unweighted fit).

    Raises
    ------
    ValueError
        If a weight is negative or not finite, the shape is wrong, or fewer
        than ``n_components`` rows have a positive weight.
    """
    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    sample_weight = _check_sample_weight(
        sample_weight if np.isscalar(sample_weight) else to_numpy(sample_weight),
        np.empty((n_samples, 0)),
        dtype=np.float64,
        ensure_non_negative=True,
        copy=True,
    )
    check_min_samples(
        int(np.count_nonzero(sample_weight)), n_components, "n_components"
    )
    if np.all(sample_weight == sample_weight[0]):
        return None
    return sample_weight


def run_em(em_step, params, *, monitor, max_iter):
    """Plain EM: iterate ``em_step`` until the monitor's rule fires or the budget is spent.

    Parameters
    ----------
    em_step : callable
        ``em_step(params) -> (objective, new_params)``.
    params : object
        Starting parameters.
    monitor : ConvergenceMonitor
        Receives the objective of every iterate (its change with the previous
        one is the stopping criterion).
    max_iter : int
        Number of ``em_step`` calls at most.

    Returns
    -------
    params : object
        The last M-step's parameters.
    n_iter : int
        Calls of ``em_step``.
    """
    for _ in range(max_iter):
        lower_bound, params = em_step(params)
        if monitor.report(lower_bound):
            break
    return params, monitor.n_iter


def warm_start_mismatch(what, fitted, current, method="warm_start"):
    """The error for a warm start (or ``partial_fit``) from parameters of another shape."""
    if method == "partial_fit":
        return ValueError(
            f"partial_fit continues from the fitted parameters, but {what} changed "
            f"from {fitted!r} to {current!r} since they were fitted. Call fit (or "
            "use a fresh estimator) to start from scratch."
        )
    return ValueError(
        f"warm_start=True continues from the fitted parameters, but {what} changed "
        f"from {fitted!r} to {current!r} since they were fitted. Set "
        "warm_start=False (or use a fresh estimator) to refit from scratch."
    )


class RowWeights(NamedTuple):
    """Validated row weights of one fit call, in the forms its parts need.

    ``host`` is the float64 NumPy vector (initialisation), ``values`` the
    same next to the data (the passes: the input's namespace and device, or a
    Dask array with its row chunks) and ``total`` their sum.
    """

    host: np.ndarray
    values: object
    total: float


def pass_weights(weights):
    """The ``sample_weight`` argument of the passes for ``weights`` (or None)."""
    return None if weights is None else weights.values


def total_weight(X, weights):
    """``sum_n w_n`` as a Python float (``n_samples`` without weights)."""
    return float(X.shape[0]) if weights is None else weights.total


def stepwise_step_size(n_batch, learning_offset, learning_decay):
    """Step ``gamma_t = (t + t0)^(-kappa)`` of update ``t`` (1-based) of stepwise EM."""
    return float((n_batch + learning_offset) ** -learning_decay)


class BaseMixtureEM(BaseEstimator, metaclass=ABCMeta):
    """Base class of mixtures of experts fitted by EM on the joint likelihood of ``(X, y)``.

    Not for direct use: :class:`~skmoe.GaussianGatedMoERegressor` is the one
    subclass.  The parameters are documented there.
    """

    _parameter_constraints: dict = {
        "n_components": [StrictIntInterval(1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [StrictIntInterval(0, None, closed="left")],
        "n_init": [StrictIntInterval(1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_SCHEMES))],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [StrictIntInterval(1, None, closed="left")],
        "acceleration": [StrOptions({"squarem"}), None],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "init_sample_size": [StrictIntInterval(1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_components,
        *,
        tol,
        reg_covar,
        max_iter,
        n_init,
        init_params,
        random_state,
        warm_start,
        verbose,
        verbose_interval,
        acceleration,
        init_sample_size,
        learning_offset,
        learning_decay,
    ):
        self.n_components = n_components
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
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.init_sample_size = init_sample_size

    # ------------------------------------------------------------ skeleton

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Estimate the parameters by EM on the joint likelihood of ``(X, y)``.

        The best of ``n_init`` initialisations is kept (one, continuing from
        the fitted parameters, with ``warm_start=True``).  If the fit raises,
        a fitted estimator keeps its previous state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights: EM maximises the weighted joint
            log-likelihood ``sum_n w_n log p(x_n, y_n)``, so an integer
            weight is the same as repeating the row and a zero weight the
            same as dropping it.  The initialisation is weighted too.
            Only the ratios of the weights matter.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        xp = input_namespace(X)
        X, y, Y = self._validate_fit_data(X, y, xp, warm=None if do_init else "warm_start")
        weights = self._check_sample_weight(sample_weight, X, xp)
        start = self._check_initial_parameters(X, Y) if do_init else None
        backend = get_backend(xp, X)

        def em_step(params):
            return self._em_step(X, Y, params, backend, xp, weights)

        random_state = check_random_state(self.random_state)
        n_init = self.n_init if do_init else 1
        best = None
        for init in range(n_init):
            if not do_init:
                params = self._get_parameters()
            elif start is not None:
                params = start
            else:
                params = self._initialize_parameters(X, Y, random_state, weights)
            monitor = self._monitor(init, n_init)
            if self.acceleration == "squarem":
                params, n_iter = squarem(
                    em_step,
                    params,
                    monitor=monitor,
                    max_iter=self.max_iter,
                    to_vector=self._params_to_vector,
                    from_vector=self._params_from_vector,
                )
            else:
                params, n_iter = run_em(em_step, params, monitor=monitor, max_iter=self.max_iter)
            monitor.finish(warn=False)
            # Final pass: the likelihood of the returned parameters, and the
            # sufficient statistics partial_fit continues from.
            lower_bound, statistics = self._statistics(X, Y, params, backend, xp, weights)
            if best is None or lower_bound > best[0]:
                best = (lower_bound, params, n_iter, monitor, statistics)

        lower_bound, params, n_iter, monitor, statistics = best
        monitor.warn_if_not_converged()
        self._set_fitted_state(params, X, y, Y, xp)
        self.converged_ = monitor.converged
        self.n_iter_ = n_iter
        self.lower_bound_ = float(lower_bound)
        self.history_ = monitor.history
        self.lower_bounds_ = self.history_["objective"].tolist()
        self.n_batch_iter_ = 0
        self._running_statistics = _per_unit_weight(statistics, total_weight(X, weights))
        return self

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One stepwise-EM update from a batch of ``(X, y)``.

        Stepwise (online) EM (Cappé & Moulines 2009) keeps running averages
        ``S`` of the per-sample sufficient statistics.  Each call computes the
        batch's statistics ``s_t`` at the current parameters (one E-step),
        updates ``S <- (1 - gamma_t) S + gamma_t s_t`` with ``gamma_t =
        (t + learning_offset) ** -learning_decay`` and sets the parameters to
        the M-step of ``S``.  Memory is that of one batch.

        - The first call on an unfitted estimator initialises the parameters
          from its batch (``init_params``, the best of ``n_init`` starts by
          the batch's likelihood, as :meth:`fit` does) and takes ``S = s_1``
          (``gamma_1 = 1``).  Like EM, stepwise EM converges to a local
          maximum near its start, so a first batch that represents the
          data, and ``n_init > 1``, help.  ``n_components``,
          ``covariance_type`` and the numbers of features and outputs are
          fixed from then on: changing them raises a ``ValueError``.
        - After :meth:`fit`, ``S`` is the statistics of the whole training
          set at the fitted parameters, so ``partial_fit`` continues from the
          fitted state (with ``gamma_1 = (1 + learning_offset) **
          -learning_decay``), as ``warm_start=True`` continues from it in
          :meth:`fit`; the difference is that ``fit`` runs EM to convergence
          on the data it is given, ``partial_fit`` does one averaged step.

        ``n_batch_iter_`` counts the calls since the last ``fit`` (or since
        the first call); ``lower_bound_`` becomes the batch's mean joint
        log-likelihood at the parameters before the update.  ``n_iter_``,
        ``converged_``, ``lower_bounds_`` and ``history_`` keep describing the
        last ``fit`` (0, False and empty if there was none).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs of the batch.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets of the batch.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights within the batch.  Each batch enters
            the average with the weight ``gamma_t`` whatever its size or
            total weight.

        Returns
        -------
        self : object
            Updated estimator.
        """
        first = not hasattr(self, "converged_")
        xp = input_namespace(X)
        X, y, Y = self._validate_fit_data(X, y, xp, warm=None if first else "partial_fit")
        weights = self._check_sample_weight(sample_weight, X, xp)
        backend = get_backend(xp, X)
        if first:
            start = self._check_initial_parameters(X, Y)
            random_state = check_random_state(self.random_state)
            best = None
            # As in fit: the best of n_init starts, judged on this batch.
            for _ in range(1 if start is not None else self.n_init):
                params = start
                if params is None:
                    params = self._initialize_parameters(X, Y, random_state, weights)
                candidate = self._statistics(X, Y, params, backend, xp, weights)
                if best is None or candidate[0] > best[0]:
                    best = candidate
            lower_bound, statistics = best
            running, n_batch = None, 1
        else:
            params = self._get_parameters()
            running, n_batch = self._running_statistics, self.n_batch_iter_ + 1
            lower_bound, statistics = self._statistics(X, Y, params, backend, xp, weights)
        statistics = _per_unit_weight(statistics, total_weight(X, weights))
        if running is not None:
            step = stepwise_step_size(n_batch, self.learning_offset, self.learning_decay)
            statistics = blend_statistics(running, statistics, step)
        params = self._m_step(statistics, X.shape[1])
        self._set_fitted_state(params, X, y, Y, xp)
        if first:
            self.converged_ = False
            self.n_iter_ = 0
            self.lower_bounds_ = []
            self.history_ = self._monitor(0, 1).history
        self.lower_bound_ = float(lower_bound)
        self.n_batch_iter_ = n_batch
        self._running_statistics = statistics
        return self

    def _check_sample_weight(self, sample_weight, X, xp):
        """:class:`RowWeights` of ``sample_weight`` for ``X``, or None (no weights).

        Dask inputs take the weights as a host vector (``n_samples`` floats)
        and get them back as a Dask array with the row chunks of ``X``.
        """
        host = check_em_sample_weight(sample_weight, X, self.n_components)
        if host is None:
            return None
        values = host
        if is_dask_array(X):
            values = align_row_blocks(X, host)[1]
        elif xp is not None:
            values = from_numpy(host, xp, device(X), dtype=X.dtype)
        return RowWeights(host, values, float(np.sum(host)))

    def _monitor(self, init, n_init):
        """The convergence monitor of initialisation ``init`` (0-based) of ``n_init``."""
        method = "SQUAREM" if self.acceleration == "squarem" else "EM"
        return ConvergenceMonitor(
            tol=self.tol,
            max_iter=self.max_iter,
            verbose=self.verbose,
            verbose_interval=self.verbose_interval,
            label=f"{type(self).__name__} {method} (init {init + 1}/{n_init})",
            objective_name="lower bound",
            hint="Else try other init_params or a larger n_init, or check for degenerate data.",
        )

    def _initialize_parameters(self, X, Y, random_state, weights=None):
        """Responsibilities from ``init_params`` on ``[X, Y]``, then one M-step.

        Runs on the host in NumPy whatever the input's namespace (KMeans has
        no array-API support), so that every ``init_params`` gives the same
        start on every device.  ``weights`` (:class:`RowWeights` or None)
        weigh both the scheme and the moments.  Dask inputs are initialised
        from a uniform random sample of at most ``init_sample_size`` rows
        (:func:`skmoe.utils._dask.sample_rows`), never from the whole array.
        """
        sample_weight = None if weights is None else weights.host
        init_sample_size = self.init_sample_size
        if is_dask_array(X):
            n_max = X.shape[0] if init_sample_size is None else init_sample_size
            (X, Y), indices = sample_rows([X, Y], n_max, random_state)
            init_sample_size = None  # the sample is the data now
            if sample_weight is not None:
                sample_weight = sample_weight[indices]
                if np.count_nonzero(sample_weight) < self.n_components:
                    raise ValueError(
                        f"The random sample of {len(indices)} rows drawn to initialise "
                        f"has fewer than n_components={self.n_components} rows of "
                        "positive weight; increase init_sample_size."
                    )
        elif not isinstance(X, np.ndarray):
            X, Y = to_numpy(X), to_numpy(Y)  # array-API input: initialise on the host
        statistics = initial_statistics(
            X, Y, self.n_components, self.init_params, random_state, sample_weight,
            init_sample_size,
        )
        return self._m_step(statistics, X.shape[1])

    def _em_step(self, X, Y, params, backend, xp, weights=None):
        """``(mean log-likelihood of params, parameters after one E+M step)``."""
        lower_bound, statistics = self._statistics(X, Y, params, backend, xp, weights)
        return lower_bound, self._m_step(statistics, X.shape[1])

    # --------------------------------------------------------------- hooks

    @abstractmethod
    def _validate_fit_data(self, X, y, xp, warm):
        """Validated ``(X, y, Y)``; with ``warm``, also check the warm start.

        ``warm`` is None (a fresh fit), ``"warm_start"`` or ``"partial_fit"``
        (continue from the fitted parameters; the name goes into the error
        messages).  ``Y`` is the ``(n_samples, n_outputs)`` target matrix in
        the namespace and dtype of ``X``.
        """

    @abstractmethod
    def _check_initial_parameters(self, X, Y):
        """Starting parameters given by the user (checked), or None."""

    @abstractmethod
    def _statistics(self, X, Y, params, backend, xp, weights=None):
        """``(mean log-likelihood of params, sufficient statistics)`` of one E-step.

        The statistics are sums over the rows, ``(s0, s1, s2, centers)`` as
        :func:`skmoe.mixture._params.m_step` takes them.  With ``weights``
        (:class:`RowWeights`) both are weighted and the mean is per unit of
        weight.
        """

    @abstractmethod
    def _m_step(self, statistics, n_features):
        """Parameters maximising the EM surrogate of ``statistics``."""

    @abstractmethod
    def _get_parameters(self):
        """The fitted parameters, as the record the EM step takes."""

    @abstractmethod
    def _set_fitted_state(self, params, X, y, Y, xp):
        """Store ``params`` and everything inference reads."""

    @abstractmethod
    def _params_to_vector(self, params):
        """Unconstrained coordinates of ``params`` (for SQUAREM)."""

    @abstractmethod
    def _params_from_vector(self, vector, like):
        """Parameters shaped like ``like`` from :meth:`_params_to_vector` output."""
