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
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_features, check_is_fitted, validate_data

from ..utils._array_api import (
    array_api_namespace,
    check_same_namespace,
    device,
    from_numpy,
    supported_float_dtypes,
    to_numpy,
)
from ._passes import get_backend
from ._params import (
    _COVARIANCE_TYPES,
    _PARAM_KEYS,
    _kernel_params,
    _moments_from_responsibilities,
    _params_from_vector,
    _params_to_vector,
    check_moe_params,
    compute_precision_cholesky,
    m_step,
    n_free_parameters,
    sample_moe,
)


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
        log_likelihood, s0, s1, s2 = get_backend(array_api_namespace(X)).em_pass(X, Y, *kernel_args, True)
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
        log_likelihood = get_backend(array_api_namespace(X)).em_pass(X, Y, *_kernel_params(params), False)[0]
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
        mean, var = get_backend(array_api_namespace(X)).predictive_moments(
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
        gates = get_backend(array_api_namespace(X)).gate_probabilities(X, *self._fitted_kernel_params()[:4])
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
        return (X, *get_backend(array_api_namespace(X)).log_densities(X, Y, *args))

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
