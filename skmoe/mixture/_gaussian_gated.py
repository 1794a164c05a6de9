"""The Gaussian-gated mixture of experts estimator.

The class holds the model-specific hooks of the EM skeleton
(:class:`skmoe.mixture._base.BaseMixtureEM`) and inference: ``predict``,
``predict_gates``, ``score_samples``, ``joint_log_likelihood``, ``bic``,
``aic`` and ``sample``.  Parameter algebra and the M-step are in
:mod:`skmoe.mixture._params`; the passes over the data go through the backend
contract of :mod:`skmoe.mixture._passes`.

Inference reads fitted state only: the parameters in kernel layout
(``_fitted_kernel``, stored once at fit in the namespace and on the device of
the training data) and the settings snapshotted at fit (``_fitted_params``),
so ``set_params`` after ``fit`` changes nothing until the next ``fit``.
"""

from functools import partial

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_features,
    check_is_fitted,
    validate_data,
)

from ..utils._array_api import (
    array_api_namespace,
    check_same_namespace,
    device,
    from_numpy,
    supported_float_dtypes,
    to_numpy,
)
from ..utils._validation import (
    RESCALE_HINT,
    check_finite_output,
    check_int,
    check_min_samples,
    snapshot_params,
)
from ..utils._dask import align_row_blocks, is_dask_array
from ._base import (
    INIT_SCHEMES,
    BaseMixtureEM,
    pass_weights,
    total_weight,
    warm_start_mismatch,
)
from ._passes import KernelParams, get_backend
from ._params import (
    _COVARIANCE_TYPES,
    _PARAM_KEYS,
    _kernel_params,
    _params_from_vector,
    _params_to_vector,
    check_moe_params,
    compute_precision_cholesky,
    kernel_layout,
    m_step,
    n_free_parameters,
    sample_moe,
)


def _target_matrix(X, y, xp):
    """A fresh ``(n_samples, n_outputs)`` copy of ``y`` in namespace ``xp``, dtype of ``X``."""
    if xp is None:
        # C-contiguous: the kernels then see one array layout.
        return np.array(y, dtype=X.dtype, order="C").reshape(X.shape[0], -1)
    return xp.reshape(xp.asarray(y, dtype=X.dtype, device=device(X), copy=True), (X.shape[0], -1))


def _validate_dask_data(estimator, X, y=None, *, reset, ensure_min_samples=1):
    """The Dask counterpart of ``validate_data``: checks that compute nothing.

    Shapes, the number of features (``n_features_in_``, set or checked by
    ``validate_data(skip_check_array=True)``), a float dtype (others are cast
    to float64, lazily) and row chunks (``X`` and ``y`` with the same row
    chunks and one chunk across columns).  Finiteness is checked by the
    caller, in one reduction (:func:`_check_second_moments`).

    Returns
    -------
    X : dask.array.Array
    y : dask.array.Array or None
    """
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D Dask array for X, got {X.ndim} dimension(s).")
    if any(np.isnan(X.shape)) or (y is not None and any(np.isnan(np.shape(y)))):
        raise ValueError(
            "The Dask array has unknown chunk sizes; call compute_chunk_sizes() on it first."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    if X.shape[0] < ensure_min_samples:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) while a minimum of "
            f"{ensure_min_samples} is required by {type(estimator).__name__}."
        )
    if y is None:
        return align_row_blocks(X)[0], None
    if np.ndim(y) not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got {np.ndim(y)} dimensions.")
    X, y = align_row_blocks(X, y)
    return X, y.astype(X.dtype)


def _dask_target_matrix(X, y):
    """``y`` as a lazy ``(n_samples, n_outputs)`` Dask array (row chunks of ``X``)."""
    return y[:, None] if y.ndim == 1 else y


def _check_second_moments(X, Y, xp):
    """Raise a clear ``ValueError`` if the sums of squares of ``[X, Y]`` overflow.

    EM, the k-means initialisation and the Cholesky factorisations all work
    with second moments; if those overflow, the fit can only fail later with
    an obscure error (or return NaN), so this is checked first.  On Dask
    inputs this is one reduction over the chunks (it also catches NaN and
    infinity, which Dask inputs are not checked for otherwise).
    """
    if is_dask_array(X):
        import dask

        with np.errstate(over="ignore", invalid="ignore"):
            total = sum(dask.compute((X * X).sum(), (Y * Y).sum()))
    elif xp is None:
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.einsum("ij,ij->", X, X) + np.einsum("ij,ij->", Y, Y)
    else:
        total = xp.sum(X * X) + xp.sum(Y * Y)
    check_finite_output(
        total,
        "sum of squares of [X, y] (the second moments EM needs overflow)",
    )


def _in_input_dtype(values, X):
    """``values`` in the dtype of ``X`` (numba kernels return float64)."""
    if is_dask_array(values):
        return values.astype(X.dtype)
    return values.astype(X.dtype, copy=False) if isinstance(values, np.ndarray) else values


def _after_checks(check, values, *others):
    """``values`` once ``check(values, *others)`` has passed.

    NumPy and array-API results are checked now; a lazy Dask result is
    checked block by block when it is computed (``others`` must have its
    row chunks), so that a non-finite block raises the same ``ValueError``
    instead of going unnoticed.
    """
    if not is_dask_array(values):
        check(values, *others)
        return values
    import dask.array as da

    return da.map_blocks(
        _checked_block, values, *others, check=check, dtype=values.dtype,
        meta=np.empty((0,) * values.ndim, dtype=values.dtype),
    )


def _checked_block(values, *others, check):
    check(values, *others)
    return values


def _check_predictive(mean, var, xp=None):
    """Errors of predict: every noise variance is positive, so ``var > 0``
    wherever the gates carry mass; ``var <= 0`` (all gates zero: the gate
    densities overflowed in every component) or NaN means that no finite
    answer was computed."""
    _check_positive(var, "predict output", xp)
    check_finite_output(mean, "predict output")


def _check_gates(gates, xp=None):
    """Rows sum to one unless every gate density overflowed (all zero)."""
    total = gates.sum(axis=1) if xp is None else xp.sum(gates, axis=1)
    _check_positive(total, "predict_gates output", xp)


def _check_score(out, log_marginal_x, y_given):
    """The kernels' log-sum-exp is stable, so for finite inputs every
    log-density is finite unless a Mahalanobis distance overflowed: -inf (and
    NaN = -inf - (-inf)) are overflows of the answer, not values."""
    check_finite_output(log_marginal_x, "score_samples output (log p(x))")
    if y_given:
        check_finite_output(out, "score_samples output")


def _check_positive(values, what, xp):
    """``check_finite_output``'s error unless every entry of ``values`` is > 0."""
    positive = np.all(values > 0) if xp is None else xp.all(values > 0)
    if not bool(positive):
        raise ValueError(
            f"The {what} is not finite (NaN or infinity): the gate densities of some "
            f"inputs overflow or underflow in every component. {RESCALE_HINT}"
        )


class GaussianGatedMoERegressor(RegressorMixin, BaseMixtureEM):
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
    threads.  float32 input gives float32 fitted attributes and outputs.
    Under ``sklearn.set_config(array_api_dispatch=True)``, CuPy,
    PyTorch or other array-API inputs are processed in their own namespace
    and on their own device instead, and the fitted attributes live there
    (see :ref:`array_api`).  :class:`dask.array.Array` inputs are fitted
    chunk by chunk (the statistics are summed on the workers, the M-step
    runs here; fitted attributes are NumPy) and predictions on them are
    lazy; ``sample_weight`` and ``partial_fit`` (stepwise EM over batches)
    are described in :ref:`large_data`.

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
        0 is silent.  Otherwise each initialisation prints one line every
        ``verbose_interval`` iterations (iteration, lower bound, change,
        elapsed time and an upper bound on the remaining time) and a closing
        line, in the format of :class:`~skmoe.utils._monitor.ConvergenceMonitor`.

    verbose_interval : int, default=10
        Iterations between two progress lines.

    acceleration : {None, "squarem"}, default=None
        If "squarem", EM is accelerated by the squared extrapolation method
        (SQUAREM, Varadhan & Roland 2008, scheme S3) in unconstrained
        coordinates (log-weights, log-Cholesky covariances).  Every
        extrapolated point is followed by an EM step and kept only if its
        log-likelihood is at least that of the plain EM path, so the recorded
        likelihood never decreases when ``reg_covar=0`` (see ``lower_bounds_``
        for ``reg_covar > 0``).  The stopping rule is the plain one (a
        single EM step gains less than ``tol``), so both reach the same
        tolerance; SQUAREM pays off where EM is slow, e.g. over-fitted
        models.  ``n_iter_`` counts every E+M pass, extrapolated or not.

    init_sample_size : int or None, default=100_000
        Rows of the uniform random sample that the initialisation runs on,
        so that its memory and time do not grow with ``n_samples``.  On
        Dask input every ``init_params`` scheme runs on such a sample (drawn
        without reading the other rows) and the starting parameters are its
        moments.  None uses every row.

    learning_offset : float, default=10.0
        ``t0 >= 0`` in the step size ``gamma_t = (t + t0) ** -kappa`` of
        :meth:`partial_fit` (stepwise EM).  Larger values damp the early
        updates.  Not used by :meth:`fit`.

    learning_decay : float, default=0.7
        ``kappa`` in ``(0.5, 1]`` in the step size of :meth:`partial_fit`:
        ``sum_t gamma_t`` diverges and ``sum_t gamma_t^2`` converges, the
        conditions under which stepwise EM converges (Cappé & Moulines
        2009).  ``kappa = 1`` with ``t0 = 0`` averages all batches equally;
        smaller values forget the early batches (and the initialisation)
        faster.  Not used by :meth:`fit`.

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
        best initialisation; never decreasing when ``reg_covar=0`` (exact
        EM).  With ``reg_covar > 0`` the M-step maximises the EM surrogate
        minus ``reg_covar / 2 * sum_k N_k P_k``, with ``N_k`` the current
        responsibility sums and ``P_k = tr(Sigma_k^-1) + tr(S_k^-1) +
        tr(A_k^T S_k^-1 A_k)`` (the trace of the joint precision of ``(x, y)``
        for "full"), for every ``covariance_type``.  Because the weights
        ``N_k`` follow the data, this is not EM on any fixed penalised
        likelihood, and the log-likelihood may decrease, by O(reg_covar);
        each step guarantees only ``L(theta') - L(theta) >= reg_covar / 2 *
        sum_k pi'_k (P_k(theta') - P_k(theta))``.  With SQUAREM, the
        log-likelihood of every point kept on the path (rejected extrapolations
        are counted in ``n_iter_`` but not recorded).

    history_ : dict of ndarray
        The convergence monitor's record of the best initialisation, one
        entry per element of ``lower_bounds_``: ``"iteration"``,
        ``"objective"`` (equal to ``lower_bounds_``), ``"change"`` (the
        difference tested against ``tol``; NaN where no test is made: the
        first iteration, and with SQUAREM the first pass of each cycle and
        accepted extrapolations) and ``"elapsed"`` (seconds since the EM loop
        started).

    n_batch_iter_ : int
        Number of :meth:`partial_fit` updates since the last :meth:`fit`
        (0 after ``fit``).

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
        **BaseMixtureEM._parameter_constraints,
        "covariance_type": [StrOptions(set(_COVARIANCE_TYPES))],
        "init_params": [StrOptions(set(INIT_SCHEMES)), dict],
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
        init_sample_size=100_000,
        learning_offset=10.0,
        learning_decay=0.7,
    ):
        super().__init__(
            n_components,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
            acceleration=acceleration,
            init_sample_size=init_sample_size,
            learning_offset=learning_offset,
            learning_decay=learning_decay,
        )
        self.covariance_type = covariance_type

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # Every option is supported: initialisation and M-steps run on the
        # host, the passes over the data in the input's namespace.
        tags.array_api_support = True
        return tags

    # ------------------------------------------------------- hooks of fit

    def _validate_fit_data(self, X, y, xp, warm):
        if warm:
            self._check_warm_start(X, warm)
        if is_dask_array(X):
            X, y = _validate_dask_data(self, X, y, reset=not warm, ensure_min_samples=2)
            Y = _dask_target_matrix(X, y)
        else:
            X, y = validate_data(
                self,
                X,
                y,
                reset=not warm,
                multi_output=True,
                y_numeric=True,
                dtype=supported_float_dtypes(xp),
                order="C",
                ensure_min_samples=2,
            )
            Y = _target_matrix(X, y, xp)
        _check_second_moments(X, Y, xp)
        check_min_samples(X.shape[0], self.n_components)
        if warm and Y.shape[1] != self.n_outputs_:
            raise warm_start_mismatch(
                "the number of outputs in y", self.n_outputs_, Y.shape[1], warm
            )
        return X, y, Y

    def _check_warm_start(self, X, method):
        """Raise unless the fitted parameters fit the current settings and ``X``."""
        fitted = self._fitted_params
        checks = [
            ("n_components", fitted["n_components"], self.n_components),
            ("covariance_type", fitted["covariance_type"], self.covariance_type),
        ]
        if method == "warm_start":
            # (partial_fit leaves it to validate_data's standard message.)
            try:
                checks.append(
                    ("the number of features in X", self.n_features_in_, _num_features(X))
                )
            except (TypeError, IndexError):
                pass  # not a 2-D array-like: validate_data reports it
        for what, fitted_value, current in checks:
            if fitted_value != current:
                raise warm_start_mismatch(what, fitted_value, current, method)

    def _check_initial_parameters(self, X, Y):
        if not isinstance(self.init_params, dict):
            return None
        params = check_moe_params(
            {key: to_numpy(value) for key, value in self.init_params.items()},
            covariance_type=self.covariance_type,
            n_features=X.shape[1],
            n_outputs=Y.shape[1],
        )
        if params["weights"].shape[0] != self.n_components:
            raise ValueError(
                f"init_params has {params['weights'].shape[0]} components "
                f"but n_components={self.n_components}."
            )
        return {
            **params,
            "precisions_cholesky": compute_precision_cholesky(
                params["covariances"], self.covariance_type
            ),
            "covariance_type": self.covariance_type,
        }

    def _statistics(self, X, Y, params, backend, xp, weights=None):
        kernel_args = _kernel_params(params)
        log_likelihood, s0, s1, s2 = backend.em_pass(
            X, Y, *kernel_args, True, sample_weight=pass_weights(weights), xp=xp
        )
        lower_bound = log_likelihood / total_weight(X, weights)
        if not np.isfinite(lower_bound):
            raise ValueError(
                "The log-likelihood is not finite; the data may be degenerate. "
                "Try increasing reg_covar or rescaling the data."
            )
        # The kernel's moments are about (mu_k, A_k mu_k + b_k).
        centers = np.hstack([params["means"], kernel_args[4]])
        return lower_bound, (s0, s1, s2, centers)

    def _m_step(self, statistics, n_features):
        return m_step(*statistics, n_features, self.covariance_type, self.reg_covar)

    _params_to_vector = staticmethod(_params_to_vector)
    _params_from_vector = staticmethod(_params_from_vector)

    def _get_parameters(self):
        """Fitted parameters as host NumPy float64 copies (the parameter record).

        Copies, so that no EM step can modify the fitted arrays in place: a
        warm start that fails must leave them as they were.
        """
        params = {
            key: np.array(to_numpy(getattr(self, key + "_"), dtype=np.float64))
            for key in (*_PARAM_KEYS, "precisions_cholesky")
        }
        params["covariance_type"] = self._fitted_params["covariance_type"]
        return params

    def _set_fitted_state(self, params, X, y, Y, xp):
        """Fitted attributes, kernel layout and settings, in the namespace and dtype of ``X``."""
        self._fitted_params = {
            **snapshot_params(self, ("n_components", "covariance_type")),
            "y_ndim": np.ndim(y),
        }
        for key in (*_PARAM_KEYS, "precisions_cholesky"):
            value = np.asarray(params[key], dtype=X.dtype if xp is None else np.float64)
            if xp is not None:
                value = from_numpy(value, xp, device(X), dtype=X.dtype)
            setattr(self, key + "_", value)
        self.n_outputs_ = Y.shape[1]
        # Built from the stored attributes (not from ``params``), so that
        # inference sees exactly the fitted attributes, rounded to X.dtype.
        layout = kernel_layout(self._get_parameters())
        if xp is None:
            self._fitted_kernel = KernelParams(*(np.array(a) for a in layout))
        else:
            where = device(X)
            self._fitted_kernel = KernelParams(
                *(from_numpy(a, xp, where, dtype=X.dtype) for a in layout)
            )

    # ------------------------------------------------------------- inference

    def _validate_x(self, X, method):
        """Validated ``X`` and its namespace (None for NumPy and Dask)."""
        check_is_fitted(self)
        if is_dask_array(X):
            return _validate_dask_data(self, X, reset=False)[0], None
        xp = array_api_namespace(X)
        check_same_namespace(X, self, attribute="means_", method=method)
        X = validate_data(self, X, reset=False, dtype=supported_float_dtypes(xp), order="C")
        return X, xp

    def _validate_xy(self, X, y, method):
        check_is_fitted(self)
        if is_dask_array(X):
            X, y = _validate_dask_data(self, X, y, reset=False)
            Y, xp = _dask_target_matrix(X, y), None
        else:
            X, Y, xp = self._validate_xy_arrays(X, y, method)
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {Y.shape[1]} outputs, but {type(self).__name__} was fitted "
                f"with {self.n_outputs_}."
            )
        return X, Y, xp

    def _validate_xy_arrays(self, X, y, method):
        xp = array_api_namespace(X)
        check_same_namespace(X, self, attribute="means_", method=method)
        X, y = validate_data(
            self,
            X,
            y,
            reset=False,
            multi_output=True,
            y_numeric=True,
            dtype=supported_float_dtypes(xp),
            order="C",
        )
        return X, _target_matrix(X, y, xp), xp

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
        X, xp = self._validate_x(X, "predict")
        mean, var = get_backend(xp, X).predictive_moments(
            X, *self._fitted_kernel.predictive, xp=xp
        )
        check = partial(_check_predictive, xp=xp)
        mean = _in_input_dtype(_after_checks(check, mean, var), X)
        if return_std and is_dask_array(X):
            var = _after_checks(lambda v, m: check(m, v), var, mean)
        if self._fitted_params["y_ndim"] == 1:
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
        X, xp = self._validate_x(X, "predict_gates")
        gates = get_backend(xp, X).gate_probabilities(X, *self._fitted_kernel.gates, xp=xp)
        return _in_input_dtype(_after_checks(partial(_check_gates, xp=xp), gates), X)

    def _log_densities(self, X, y, method):
        """Validated ``X``, its namespace and per-sample ``log p(x, y)``, ``log p(x)``.

        ``y=None`` gives ``log p(x)`` twice.  The densities are float64 on the
        numba path (callers cast to ``X.dtype`` after taking differences).
        """
        if y is None:
            X, xp = self._validate_x(X, method)
            Y = _target_matrix(X, np.empty((X.shape[0], 0)), xp)
            # Drop the experts: (log_weights, means, gate factors) plus empty
            # output-side arrays.
            n_components, n_features = self._fitted_kernel.means.shape
            args = (
                *self._fitted_kernel.gates,
                np.empty((n_components, 0)),
                np.empty((n_components, 0, n_features)),
                np.empty((n_components, 0, 0)),
                np.zeros(n_components),
            )
        else:
            X, Y, xp = self._validate_xy(X, y, method)
            args = self._fitted_kernel.densities
        return (X, xp, *get_backend(xp, X).log_densities(X, Y, *args, xp=xp))

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
        X, _, log_joint, log_marginal_x = self._log_densities(X, y, "score_samples")
        # -inf - (-inf) is NaN, which the check reports as an overflow.
        with np.errstate(invalid="ignore"):
            out = log_marginal_x if y is None else log_joint - log_marginal_x
        check = partial(_check_score, y_given=y is not None)
        return _in_input_dtype(_after_checks(check, out, log_marginal_x), X)

    def joint_log_likelihood(self, X, y, sample_weight=None):
        """Mean joint log-likelihood ``mean_n log p(x_n, y_n)``.

        This is the objective maximised by :meth:`fit`; on the training data
        (with the same ``sample_weight``) it equals ``lower_bound_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; the result is then the weighted mean
            ``sum_n w_n log p(x_n, y_n) / sum_n w_n``.

        Returns
        -------
        log_likelihood : float
            Mean joint log-likelihood per sample (per unit of weight).
        """
        _, xp, log_joint, _ = self._log_densities(X, y, "joint_log_likelihood")
        if is_dask_array(log_joint) and sample_weight is None:
            import dask

            mean, finite = dask.compute(log_joint.mean(), np.isfinite(log_joint).all())
            if not finite:
                check_finite_output(np.array([np.nan]), "joint log-likelihood")
            return float(mean)
        log_joint = to_numpy(log_joint, dtype=np.float64)
        if sample_weight is None:
            check_finite_output(log_joint, "joint log-likelihood")
            return float(np.mean(log_joint))
        weight = _check_sample_weight(
            to_numpy(sample_weight), log_joint[:, None], dtype=np.float64,
            ensure_non_negative=True,
        )
        if not weight.sum() > 0:
            raise ValueError("sample_weight sums to zero: the weighted mean is undefined.")
        # Rows of weight zero do not count, whatever their density.
        kept = weight > 0
        check_finite_output(log_joint[kept], "joint log-likelihood")
        return float(np.dot(weight[kept], log_joint[kept]) / weight.sum())

    def _information_criterion(self, X, y, sample_weight, penalty):
        """``-2 (weighted log-likelihood) + penalty(n_effective) * n_parameters``."""
        if sample_weight is None:
            n_samples = float(np.shape(X)[0])
        else:
            n_samples = float(np.sum(to_numpy(sample_weight, dtype=np.float64)))
        log_likelihood = self.joint_log_likelihood(X, y, sample_weight) * n_samples
        return float(-2 * log_likelihood + penalty(n_samples) * self._n_parameters())

    def _n_parameters(self):
        fitted = self._fitted_params
        return n_free_parameters(
            fitted["n_components"], self.n_features_in_, self.n_outputs_,
            fitted["covariance_type"],
        )

    def bic(self, X, y, sample_weight=None):
        """Bayesian information criterion of the joint model on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: ``log L`` is the weighted log-likelihood and
            ``n`` the total weight, so integer weights give the BIC of the
            data with repeated rows.

        Returns
        -------
        bic : float
            ``-2 log L + n_parameters log n``; lower is better.
        """
        return self._information_criterion(X, y, sample_weight, np.log)

    def aic(self, X, y, sample_weight=None):
        """Akaike information criterion of the joint model on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights, as in :meth:`bic`.

        Returns
        -------
        aic : float
            ``-2 log L + 2 n_parameters``; lower is better.
        """
        return self._information_criterion(X, y, sample_weight, lambda n: 2.0)

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
        n_samples = check_int(n_samples, "n_samples")
        params = self._get_parameters()
        X, Y, labels = sample_moe(
            params, n_samples, check_random_state(self.random_state), params["covariance_type"]
        )
        if self._fitted_params["y_ndim"] == 1:
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
