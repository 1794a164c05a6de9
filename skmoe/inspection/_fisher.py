"""Diagonal Fisher information of fitted scikit-learn models, with the variances
of its two unbiased estimators (Soen & Sun, NeurIPS 2024).

The estimator class is a thin wrapper: the network description is extracted
from the fitted model by :func:`_extract_network`, and the passes over the data
are made by :func:`fisher_statistics`, both in
:mod:`skmoe.inspection._fisher_statistics`.
"""

import math
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    validate_data,
)

from ..utils._array_api import array_api_namespace
from ..utils._dask import is_dask_array
from ..utils._validation import StrictIntInterval, check_finite_output, fit_context
# fisher_statistics is looked up in this module's globals at every fit (the
# protocol tests interrupt a fit there); _extract_network is imported from
# here by tests/test_common.py.
from ._fisher_statistics import _SUPPORTED, _extract_network, _unwrap, fisher_statistics

#: Largest ``1 / noise_variance`` whose fourth power of the residual scale
#: (``1 / noise_variance**2`` times O(1) moments) stays well inside float64.
_MAX_INV_SIGMA2 = 1e150

#: What each ``method`` computes.
_ESTIMATORS = {"both": ("exact", "score", "hessian"), "score": ("score",),
               "hessian": ("exact", "hessian"), "exact": ("exact",)}


class DiagonalFisherEstimator(MetaEstimatorMixin, BaseEstimator):
    """Diagonal Fisher information of a fitted model, with estimator variances.

    For a fitted model with output distribution :math:`p(y \\mid x, \\theta)`
    (Gaussian, Bernoulli, Poisson or categorical), ``fit(X)`` computes, for
    every parameter :math:`\\theta_i`, the exact conditional Fisher
    information :math:`\\frac1N\\sum_n I(\\theta_i \\mid x_n)` (the diagonal of
    the generalised Gauss-Newton matrix) and the two unbiased Monte Carlo
    estimators of Soen & Sun (NeurIPS 2024), with labels **sampled from the
    model**: the squared score :math:`\\hat I_1` and the negative Hessian
    diagonal :math:`\\hat I_2`.  It reports the closed-form variance of each
    estimator, a Monte Carlo estimate of that variance, eigenvalue bounds on
    it, and which estimator has the lower variance for each parameter.

    Read more in the :ref:`User Guide <fisher>`.

    Parameters
    ----------
    estimator : estimator object, default=None
        A fitted :class:`~sklearn.neural_network.MLPRegressor` (squared-error
        or Poisson loss), :class:`~sklearn.neural_network.MLPClassifier`
        (binary, multiclass or multilabel), :class:`~sklearn.linear_model.
        LogisticRegression`, :class:`~sklearn.linear_model.LinearRegression`,
        :class:`~sklearn.linear_model.Ridge` or :class:`~sklearn.linear_model.
        PoissonRegressor`, possibly wrapped in
        :class:`~sklearn.frozen.FrozenEstimator` (which survives
        :func:`~sklearn.base.clone`).  It is never modified.  None is
        rejected at ``fit``.

    method : {"both", "score", "hessian", "exact"}, default="both"
        Which estimators to compute: the squared score :math:`\\hat I_1`
        ("score"), the negative Hessian diagonal :math:`\\hat I_2`
        ("hessian"), both, or only the exact diagonal ("exact", no labels
        are drawn).  Only what is asked is computed: the exact diagonal comes
        with every method except "score" without variances (the Hessian
        estimator and all variances are built on it), and "score" without
        variances backpropagates only the sampled labels (one backward pass
        per label, no Jacobian).

    compute_variances : bool, default=True
        Also compute ``variances_``, ``empirical_variances_``,
        ``x_variances_``, ``variance_bounds_`` and ``recommended_``.  False
        skips their passes (all ``C`` output Hessians for ``"hessian"``,
        the Jacobian for ``"score"``); the attributes are then None.

    n_label_samples : int, default=1
        Number ``M`` of labels drawn from the model for each row of ``X``.

    noise_variance : float or "auto", default=1.0
        Variance :math:`\\sigma^2` of the Gaussian output noise of regression
        models (ignored otherwise).  scikit-learn's squared-error loss
        corresponds to :math:`\\sigma^2 = 1`.  "auto" uses the residual
        variance on ``(X, y)``, so ``y`` must then be passed to ``fit``.

    random_state : int, RandomState instance or None, default=None
        Seeds the labels drawn from the model.  Each label is a function of
        this seed and of the row's position only (counter-based draws), so
        the results do not depend on ``batch_size``, the number of threads
        or the Dask chunking, except through rounding.

    batch_size : int, default=None
        Rows processed per block (memory use is proportional to it); by
        default 1024, smaller for deep sigmoid/tanh networks.  Results do not
        depend on it except through rounding.

    Attributes
    ----------
    fisher_exact_ : list of ndarray or None
        Exact diagonal Fisher information per sample,
        :math:`\\frac1N\\sum_n I(\\theta_i \\mid x_n)`, one array per
        parameter array of the model (see ``parameter_names_``).  With
        ``sample_weight``, :math:`N = \\sum_n s_n` and every sum over the
        rows is weighted.  None for ``method="score"`` without variances.

    estimates_ : dict
        ``{"score": [...], "hessian": [...]}`` (the keys selected by
        ``method``; empty for "exact"): the sampled estimates, averaged over the rows and the
        ``M`` draws; same layout as ``fisher_exact_``.

    variances_ : dict or None
        Closed-form variances of ``estimates_`` given ``X``,
        :math:`\\frac{1}{N^2 M}\\sum_n V_k(\\theta_i \\mid x_n)`.

    empirical_variances_ : dict or None
        Unbiased Monte Carlo estimates of ``variances_`` from the drawn labels,
        :math:`\\frac{1}{N^2M^2}\\sum_{n,m}(\\hat I_{k,nm} - I(\\theta_i\\mid x_n))^2`
        (valid for any ``M`` because the conditional mean is known exactly).

    x_variances_ : list of ndarray or None
        The part of the variance that comes from drawing ``x``: the unbiased
        sample variance over the rows of the per-sample exact Fisher
        :math:`I(\\theta_i \\mid x_n)`, divided by ``N``.  It is the same for
        both estimators, so when ``X`` is itself a sample, the variance of
        either estimate is ``variances_[k] + x_variances_`` (the law of total
        variance, :math:`\\frac1N(E_x V_k/M + \\mathrm{Var}_x I)`; Soen & Sun
        state it for ``M = 1``).

    variance_bounds_ : dict or None
        ``{key: {"lower": [...], "upper": [...]}}``: the eigenvalue bounds on
        ``variances_`` (see the User Guide); ``lower <= variances_ <= upper`` up to
        rounding.

    recommended_ : list of ndarray of str or None
        For ``method="both"`` with variances, per parameter, ``"score"`` where
        :math:`\\hat I_1` has the strictly lower closed-form variance and
        ``"hessian"`` otherwise (compared in float64, before the results are
        stored in the dtype of ``X``); None for the other methods.

    parameter_names_ : list of str
        Names of the model's parameter arrays, in the order of the lists
        above, e.g. ``["coefs_[0]", "coefs_[1]", "intercepts_[0]",
        "intercepts_[1]"]`` or ``["coef_", "intercept_"]``.

    family_ : str
        Output distribution: "gaussian", "bernoulli", "poisson" or "softmax".

    noise_variance_ : float or None
        Gaussian noise variance used (None for other families).

    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : A supported model.

    Notes
    -----
    dtype: every statistic is accumulated in float64, whatever the dtype of
    ``X`` (the quartic variance terms would lose most of float32's range and
    digits); float32 ``X`` gives float32 fitted arrays, the float64 results
    rounded once at the end, and float64 (or integer) ``X`` float64 ones.

    Soen, A. and Sun, K., "Trade-Offs of Diagonal Fisher Information Matrix
    Estimators", NeurIPS 2024.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmoe import DiagonalFisherEstimator
    >>> X, y = load_iris(return_X_y=True)
    >>> model = LogisticRegression(max_iter=1000).fit(X, y)
    >>> fisher = DiagonalFisherEstimator(model, random_state=0).fit(X)
    >>> fisher.parameter_names_
    ['coef_', 'intercept_']
    >>> fisher.fisher_exact_[0].shape
    (3, 4)
    >>> float(abs(fisher.estimates_["hessian"][0] - fisher.fisher_exact_[0]).max())
    0.0
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"]), None],
        "method": [StrOptions({"both", "score", "hessian", "exact"})],
        "compute_variances": ["boolean"],
        "n_label_samples": [StrictIntInterval(1, None, closed="left")],
        "noise_variance": [Interval(Real, 0.0, None, closed="neither"), StrOptions({"auto"})],
        "random_state": ["random_state"],
        "batch_size": [StrictIntInterval(1, None, closed="left"), None],
    }

    def __init__(self, estimator=None, *, method="both", compute_variances=True,
                 n_label_samples=1, noise_variance=1.0, random_state=None, batch_size=None):
        self.estimator = estimator
        self.method = method
        self.compute_variances = compute_variances
        self.n_label_samples = n_label_samples
        self.noise_variance = noise_variance
        self.random_state = random_state
        self.batch_size = batch_size

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Compute the diagonal Fisher information and its estimators on ``X``.

        Parameters
        ----------
        X : {array-like, dask array} of shape (n_samples, n_features)
            Inputs; labels are drawn from the fitted model, never taken from
            data.  The fitted arrays have the dtype of ``X`` (float32 or
            float64; the computation is float64 in both cases).  A
            :class:`dask.array.Array` is processed chunk by chunk on the
            current Dask scheduler (see the User Guide); the fitted
            attributes are NumPy arrays.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), \
                default=None
            Used only by ``noise_variance="auto"`` (regression residuals).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative frequency weights: every sum over the rows is
            weighted, and a row of weight ``s`` gets ``ceil(s)`` sets of
            ``n_label_samples`` labels, each set weighted ``s / ceil(s)``,
            so that an integer weight is exactly that many repeated rows and
            a zero weight a dropped row.  The Monte Carlo cost grows with
            ``sum(ceil(sample_weight))``.  None means unit weights.

        Returns
        -------
        self : DiagonalFisherEstimator
            Fitted estimator.
        """
        if self.estimator is None:
            raise TypeError(
                f"DiagonalFisherEstimator needs a fitted estimator; supported: {_SUPPORTED}."
            )
        net = _extract_network(self.estimator)
        if array_api_namespace(X) is not None:
            raise ValueError(
                "DiagonalFisherEstimator has no array-API path: it analyses "
                "scikit-learn models, whose parameters are NumPy arrays. Pass X as a "
                "NumPy array (e.g. cupy.asnumpy(X)), or disable array_api_dispatch."
            )
        statistics = fisher_statistics
        if is_dask_array(X):
            from . import _fisher_dask

            statistics = _fisher_dask.fisher_statistics_dask
            X, y, sample_weight = _fisher_dask.check_inputs(X, y, sample_weight)
            # validate_data would load the whole array: only its width is kept.
            self.n_features_in_ = X.shape[1]
            self.__dict__.pop("feature_names_in_", None)
            dtype = np.float32 if X.dtype == np.float32 else np.float64
        else:
            X = validate_data(self, X, dtype=(np.float64, np.float32), order="C")
            # The statistics are accumulated in float64; float32 X only fixes
            # the dtype of the stored results.
            dtype, X = X.dtype, np.ascontiguousarray(X, dtype=np.float64)
            if sample_weight is not None:
                sample_weight = _check_sample_weight(
                    sample_weight, X, dtype=np.float64, ensure_non_negative=True)
                if not sample_weight.sum() > 0:
                    raise ValueError("sample_weight sums to zero: there is no row to use.")
        net = self._network(X, y, net)
        if not all(np.all(np.isfinite(a)) for a in (*net.coefs, *net.intercepts)):
            raise ValueError(
                f"{type(_unwrap(self.estimator)).__name__} has non-finite (NaN or infinite) "
                "parameters; its Fisher information is undefined. Refit the model."
            )
        if X.shape[1] != net.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(_unwrap(self.estimator)).__name__} "
                f"was fitted with {net.n_features} features."
            )
        self.family_ = net.family
        self.noise_variance_ = None
        inv_sigma2 = 1.0
        if net.family == "gaussian":
            self.noise_variance_ = self._noise_variance(net, X, y, sample_weight)
            inv_sigma2 = 1.0 / self.noise_variance_
            # The quartic variance terms carry 1 / sigma^4: it must be a
            # float64 (Python's float power would raise OverflowError).
            if not math.isfinite(inv_sigma2) or inv_sigma2 > _MAX_INV_SIGMA2:
                raise ValueError(
                    f"noise_variance={self.noise_variance_!r} is too small: the variances "
                    "of the Fisher estimators scale as 1 / noise_variance**2, which "
                    "overflows float64 below ~1e-150. Rescale the targets (and refit the "
                    "model) so that the noise variance is not so tiny."
                )

        estimators = _ESTIMATORS[self.method]
        with_variances = self.compute_variances
        # The fit's one random state: the seed of the labels drawn from the model.
        rng = check_random_state(self.random_state)
        stats = statistics(
            net, X, sample_weight=sample_weight, inv_sigma2=inv_sigma2,
            n_draws=self.n_label_samples, random_state=rng, estimators=estimators,
            with_variances=with_variances, batch_size=self.batch_size,
        )
        self._store(net, stats, estimators, with_variances, dtype)
        return self

    def _store(self, net, stats, estimators, with_variances, dtype):
        """Set the fitted attributes from the statistics."""
        # Fourth moments of X overflow first (|X| >~ 1e77): no NaN or inf is
        # ever stored.
        for name, per_layer in stats.items():
            for pair in per_layer:
                for block in pair:
                    check_finite_output(block, f"Fisher statistic {name!r}")

        def layout(name):
            return self._layout(net, stats[name], dtype) if name in stats else None

        keys = [k for k in ("score", "hessian") if k in estimators]
        if len(keys) == 2 and with_variances:
            # Compared in float64, before any rounding to float32.
            self.recommended_ = [
                np.where(v1 < v2, "score", "hessian")
                for v1, v2 in zip(self._layout(net, stats["var_score"]),
                                  self._layout(net, stats["var_hessian"]))
            ]
        else:
            self.recommended_ = None
        self.parameter_names_ = self._names(net)
        self.fisher_exact_ = layout("fisher")
        self.estimates_ = {k: layout(k) for k in keys}
        if with_variances:
            self.variances_ = {k: layout("var_" + k) for k in keys}
            self.empirical_variances_ = {k: layout("evar_" + k) for k in keys}
            self.x_variances_ = layout("x_variance")
            self.variance_bounds_ = {
                k: {"lower": layout("lower_" + k), "upper": layout("upper_" + k)}
                for k in keys
            }
        else:
            self.variances_ = self.empirical_variances_ = None
            self.x_variances_ = self.variance_bounds_ = None

    def _network(self, X, y, net):
        """Hook for tests: the network to analyse (default: the wrapped model's)."""
        return net

    def _noise_variance(self, net, X, y, sample_weight):
        if self.noise_variance != "auto":
            return float(self.noise_variance)
        if y is None:
            raise ValueError("noise_variance='auto' needs the targets: call fit(X, y).")
        if is_dask_array(X):
            from ._fisher_dask import residual_sums_dask

            rss, total_weight = residual_sums_dask(net, X, y, sample_weight)
        else:
            rss, total_weight = self._residual_sums(net, X, y, sample_weight)
        dof = total_weight - (X.shape[1] + 1 if net.kind == "linear" else 0)
        if dof <= 0:
            raise ValueError("noise_variance='auto' needs more samples than parameters.")
        sigma2 = float(rss / (dof * net.n_outputs))
        if not sigma2 > 0:
            raise ValueError("The residual variance is zero; pass noise_variance explicitly.")
        return sigma2

    @staticmethod
    def _residual_sums(net, X, y, sample_weight):
        """Weighted residual sum of squares and total weight (NumPy inputs)."""
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        check_consistent_length(X, y)
        y = y.reshape(X.shape[0], -1)
        if y.shape[1] != net.n_outputs:
            raise ValueError(f"y has {y.shape[1]} outputs, the model has {net.n_outputs}.")
        squares = ((y - net.predict_natural(X)) ** 2).sum(axis=1)
        if sample_weight is None:
            return float(squares.sum()), float(X.shape[0])
        return float(sample_weight @ squares), float(sample_weight.sum())

    @staticmethod
    def _names(net):
        if net.kind == "linear":
            return ["coef_"] + (["intercept_"] if net.intercept_shape is not None else [])
        L = len(net.coefs)
        return [f"coefs_[{i}]" for i in range(L)] + [f"intercepts_[{i}]" for i in range(L)]

    @staticmethod
    def _layout(net, per_layer, dtype=np.float64):
        """Map per-layer ``(weights, bias)`` pairs to the model's parameter layout.

        The float64 statistics are stored in ``dtype`` (the dtype of ``X``).
        """
        if net.kind == "linear":
            weights, bias = per_layer[0]
            coef = weights.T.reshape(net.coef_shape).astype(dtype)
            if net.intercept_shape is None:
                return [coef]
            return [coef, bias.reshape(net.intercept_shape).astype(dtype)]
        return ([w.astype(dtype, copy=False) for w, _ in per_layer]
                + [b.astype(dtype, copy=False) for _, b in per_layer])
