"""Diagonal Fisher information of fitted scikit-learn models, with the variances
of its two unbiased estimators (Soen & Sun, NeurIPS 2024).

The estimator class is a thin wrapper: the network description is extracted
from the fitted model by :func:`_extract_network`, and the passes over the data
are in :func:`fisher_statistics` (dense products through BLAS, per-unit
statistics in the numba kernels of :mod:`skmoe.inspection._fisher_numba`).
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ..utils._array_api import array_api_namespace
from . import _fisher_numba as _k

try:  # scikit-learn >= 1.6
    from sklearn.frozen import FrozenEstimator
except ImportError:  # pragma: no cover
    FrozenEstimator = None

_SUPPORTED = (
    "MLPRegressor (squared_error or poisson loss), MLPClassifier, LogisticRegression, "
    "LinearRegression, Ridge, PoissonRegressor (optionally wrapped in "
    "sklearn.frozen.FrozenEstimator)"
)

# Row block size when batch_size is None.
_DEFAULT_BLOCK = 1024
# Bound on the entries of the full per-sample curvature matrices formed for
# networks with three or more hidden layers (limits the block size).
_MAX_FULL_ENTRIES = 1 << 23


class _Network:
    """Plain description of a fitted model as ``L`` affine layers.

    Attributes: ``coefs`` (list of (n_l, n_{l+1}) float64 arrays),
    ``intercepts``, ``activation``, ``family``, ``kind`` ("mlp" or "linear"),
    plus ``coef_shape``/``intercept_shape`` for linear models;
    ``intercept_shape`` is None when the model has no intercept
    (``fit_intercept=False``: its ``intercept_`` is a constant 0, not a
    parameter, so no Fisher entries are reported for it).
    """

    def __init__(self, coefs, intercepts, activation, family, kind, n_features,
                 coef_shape=None, intercept_shape=None):
        self.coefs = [np.ascontiguousarray(c, dtype=np.float64) for c in coefs]
        self.intercepts = [np.ascontiguousarray(b, dtype=np.float64) for b in intercepts]
        self.activation = activation
        self.family = family
        self.kind = kind
        self.n_features = n_features
        self.coef_shape = coef_shape
        self.intercept_shape = intercept_shape

    @property
    def n_outputs(self):
        return self.coefs[-1].shape[1]

    def predict_natural(self, X):
        """Output natural parameters ``h(X)``."""
        return _k.forward(self.coefs, self.intercepts, self.activation, X)[3]


def _unwrap(model):
    if FrozenEstimator is not None and isinstance(model, FrozenEstimator):
        return model.estimator
    return model


def _extract_network(model):
    """Describe a fitted supported model as a :class:`_Network`.

    Raises
    ------
    TypeError
        If the model is not supported.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    """
    model = _unwrap(model)
    if isinstance(model, (MLPClassifier, MLPRegressor)):
        check_is_fitted(model, "coefs_")
        out = model.out_activation_
        family = {"identity": "gaussian", "exp": "poisson", "softmax": "softmax",
                  "logistic": "bernoulli"}.get(out)
        if family is None:  # pragma: no cover - future sklearn output layers
            raise TypeError(f"Unsupported MLP output activation {out!r}.")
        if model.activation not in _k.ACTIVATION_CODES:  # pragma: no cover
            raise TypeError(f"Unsupported MLP activation {model.activation!r}.")
        return _Network(model.coefs_, model.intercepts_, model.activation, family, "mlp",
                        model.coefs_[0].shape[0])
    if isinstance(model, LogisticRegression):
        check_is_fitted(model, "coef_")
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.shape[0] > 1 and getattr(model, "solver", None) == "liblinear":
            raise TypeError(
                "LogisticRegression(solver='liblinear') with more than two classes is a "
                "one-vs-rest model, not a softmax model; its Fisher information is not "
                "supported. Use a multinomial solver such as 'lbfgs'."
            )
        family = "bernoulli" if coef.shape[0] == 1 else "softmax"
        intercept = np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64),
                                    (coef.shape[0],))
        return _Network([coef.T], [intercept], "identity", family, "linear", coef.shape[1],
                        np.shape(model.coef_), _intercept_shape(model))
    if isinstance(model, (LinearRegression, Ridge, PoissonRegressor)):
        check_is_fitted(model, "coef_")
        coef = np.asarray(model.coef_, dtype=np.float64)
        coef2 = coef.reshape(-1, coef.shape[-1])
        intercept = np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64),
                                    (coef2.shape[0],))
        family = "poisson" if isinstance(model, PoissonRegressor) else "gaussian"
        return _Network([coef2.T], [intercept], "identity", family, "linear",
                        coef2.shape[1], np.shape(model.coef_), _intercept_shape(model))
    raise TypeError(
        f"DiagonalFisherEstimator does not support {type(model).__name__}; "
        f"supported models: {_SUPPORTED}."
    )


def _intercept_shape(model):
    """Shape of a linear model's ``intercept_``, or None if it is not fitted."""
    return np.shape(model.intercept_) if getattr(model, "fit_intercept", True) else None


def _block_size(net, batch_size, n_samples):
    if batch_size is not None:
        return int(batch_size)
    block = _DEFAULT_BLOCK
    if len(net.coefs) >= 4 and net.activation in ("logistic", "tanh"):
        widest = max(c.shape[0] for c in net.coefs[1:])
        block = max(1, min(block, _MAX_FULL_ENTRIES // (net.n_outputs * widest * widest)))
    return max(1, min(block, n_samples))


def fisher_statistics(net, X, *, inv_sigma2=1.0, n_draws=1, random_state=None,
                      with_score=True, with_hessian=True, with_variances=True,
                      batch_size=None):
    """Diagonal Fisher information, both estimators, their variances and bounds.

    Parameters
    ----------
    net : _Network
    X : ndarray of shape (n_samples, n_features), float64
    inv_sigma2 : float, default=1.0
        ``1 / noise_variance`` (Gaussian family only).
    n_draws : int, default=1
        Labels drawn from the model per sample (``M``).
    random_state : RandomState, default=None
    with_score, with_hessian : bool, default=True
        Which sampled estimators to compute.
    with_variances : bool, default=True
        Also compute the closed-form and empirical variances and the bounds.
        Without them, the Hessian estimator backpropagates only the ``M``
        sampled directions instead of all ``C`` outputs.
    batch_size : int, default=None
        Rows per block.

    Returns
    -------
    stats : dict
        Keys ``"fisher"``, then for ``k`` in the selected estimators ``k``,
        ``"var_k"``, ``"evar_k"``, ``"lower_k"``, ``"upper_k"``, and
        ``"x_variance"`` (if ``with_variances``), each a list of per-layer
        ``(weights, bias)`` pairs of arrays shaped like ``net.coefs`` and
        ``net.intercepts``.
    """
    rng = check_random_state(random_state)
    n_samples = X.shape[0]
    L = len(net.coefs)
    C = net.n_outputs
    M = int(n_draws)
    nonlinear = net.activation in ("logistic", "tanh") and L >= 2
    do_hessian = with_hessian and nonlinear
    block = _block_size(net, batch_size, n_samples)
    N = float(n_samples)
    # (name, normalisation) of the statistics weighted by a_j^2 and by a_j^4
    names2 = [("fisher", N)]
    if with_score:
        names2.append(("score", N * M))
    if with_hessian:
        names2.append(("hessian", N * M))
    names4 = []
    if with_variances:
        names4 = [("var_score", N * N * M), ("evar_score", N * N * M * M),
                  ("lower_score", N * N * M), ("upper_score", N * N * M),
                  ("var_hessian", N * N * M), ("evar_hessian", N * N * M * M),
                  ("lower_hessian", N * N * M), ("upper_hessian", N * N * M)]
        names4 = [item for item in names4
                  if (with_score and item[0].endswith("score"))
                  or (with_hessian and item[0].endswith("hessian"))]
        # Mean over rows of the squared per-sample exact Fisher (the x-term).
        names4.append(("fisher_sq", N))
    n2, n4 = len(names2), len(names4)
    sums2 = [np.zeros((c.shape[0] + 1, n2 * c.shape[1])) for c in net.coefs]
    sums4 = [np.zeros((c.shape[0] + 1, n4 * c.shape[1])) for c in net.coefs]
    eye = np.eye(C)
    for start in range(0, n_samples, block):
        Xb = X[start:start + block]
        n = Xb.shape[0]
        acts, d1, d2, H = _k.forward(net.coefs, net.intercepts, net.activation, Xb)
        mean, var, mu4 = _k.output_moments(net.family, H, inv_sigma2)
        R = _k.sample_residuals(net.family, mean, inv_sigma2, M, rng)
        deltas, pre = _k.backward_directions(
            net.coefs, d1, np.ascontiguousarray(np.broadcast_to(eye, (n, C, C))))
        hs = hs_r = None
        if do_hessian and with_variances:
            # all C output Hessians: needed for V_2 = w^T I w
            hs = _k.hessian_units(net.coefs, d1, d2, pre)
        elif do_hessian:
            # only the sampled directions: d^2 (r^T h) / dz^2
            _, pre_r = _k.backward_directions(net.coefs, d1, np.ascontiguousarray(R))
            hs_r = _k.hessian_units(net.coefs, d1, d2, pre_r)
        if with_variances:
            li_min, li_max, lk_min, lk_max, lh_min = _k.eigen_constants(
                net.family, mean, var, mu4, inv_sigma2)
            c_lo1 = np.maximum(0.0, lk_min - li_max**2)[:, None]
            c_hi1 = (lk_max - li_min**2)[:, None]
        for layer in range(L):
            m = layer + 1
            B = np.ascontiguousarray(deltas[m])
            K = B.shape[2]
            has_h = hs is not None and m < L
            Hs = np.ascontiguousarray(hs[m]) if has_h else np.zeros((0, 0, 0))
            out = np.empty((9, n, K))
            _k.unit_statistics(_k.FAMILY_CODES[net.family], B, Hs, R, mean, var, mu4,
                               float(inv_sigma2), with_score, has_h, out)
            G, S1, E1, V1, NB, S2, E2, V2, NH = out
            if hs_r is not None and m < L:
                S2 = S2 - hs_r[m].sum(axis=1)
            cols = {"fisher": G, "score": S1, "hessian": S2}
            U2 = np.hstack([cols[name] for name, _ in names2])
            a2 = acts[layer] * acts[layer]
            sums2[layer][:-1] += a2.T @ U2
            sums2[layer][-1] += U2.sum(axis=0)
            if n4:
                NB2 = NB * NB
                cols = {"var_score": V1, "evar_score": E1, "lower_score": NB2 * c_lo1,
                        "upper_score": NB2 * c_hi1, "var_hessian": V2, "evar_hessian": E2,
                        "lower_hessian": NH * lh_min[:, None],
                        "upper_hessian": NH * li_max[:, None], "fisher_sq": G * G}
                U4 = np.hstack([cols[name] for name, _ in names4])
                sums4[layer][:-1] += (a2 * a2).T @ U4
                sums4[layer][-1] += U4.sum(axis=0)

    stats = {}
    for sums, names in ((sums2, names2), (sums4, names4)):
        for i, (name, scale) in enumerate(names):
            stats[name] = []
            for layer in range(L):
                K = net.coefs[layer].shape[1]
                block_ = sums[layer][:, i * K:(i + 1) * K] / scale
                stats[name].append((block_[:-1], block_[-1]))
    if "fisher_sq" in stats:
        # Unbiased sample variance over rows of I(theta | x_n), divided by N:
        # the x-part of the variance of any unbiased estimator when x is random.
        denominator = max(N - 1.0, 1.0)
        stats["x_variance"] = [
            tuple((sq - f * f) / denominator for sq, f in zip(pair_sq, pair))
            for pair_sq, pair in zip(stats.pop("fisher_sq"), stats["fisher"])
        ]
    return stats


def score_diagonal(net, X, R):
    """Only the squared-score estimator, with one backward pass per draw.

    The fast path for ``method="score"`` timings: the sampled residuals are
    backpropagated directly (no Jacobian), and the sum of squares over draws
    is accumulated per unit.

    Parameters
    ----------
    net : _Network
    X : ndarray of shape (n, n_features)
    R : ndarray of shape (n, M, C)
        Effective residuals (see :func:`skmoe.inspection._fisher_numba.sample_residuals`).

    Returns
    -------
    estimate : list of (weights, bias) pairs
    """
    acts, d1, _, _ = _k.forward(net.coefs, net.intercepts, net.activation, X)
    deltas, _ = _k.backward_directions(net.coefs, d1, np.ascontiguousarray(R))
    scale = X.shape[0] * R.shape[1]
    result = []
    for layer in range(len(net.coefs)):
        D = deltas[layer + 1]
        U = np.empty((D.shape[0], D.shape[2]))
        _k.squared_score_units(np.ascontiguousarray(D), U)
        a2 = acts[layer] * acts[layer]
        result.append(((a2.T @ U) / scale, U.sum(axis=0) / scale))
    return result


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

    method : {"both", "score", "hessian"}, default="both"
        Which sampled estimators to compute: the squared score
        :math:`\\hat I_1` ("score"), the negative Hessian diagonal
        :math:`\\hat I_2` ("hessian"), or both.  The exact diagonal is always
        computed.

    n_label_samples : int, default=1
        Number ``M`` of labels drawn from the model for each row of ``X``.

    noise_variance : float or "auto", default=1.0
        Variance :math:`\\sigma^2` of the Gaussian output noise of regression
        models (ignored otherwise).  scikit-learn's squared-error loss
        corresponds to :math:`\\sigma^2 = 1`.  "auto" uses the residual
        variance on ``(X, y)``, so ``y`` must then be passed to ``fit``.

    random_state : int, RandomState instance or None, default=None
        Seeds the labels drawn from the model.

    batch_size : int, default=None
        Rows processed per block (memory use is proportional to it); by
        default 1024, smaller for deep sigmoid/tanh networks.  Results do not
        depend on it except through the order of the random draws.

    Attributes
    ----------
    fisher_exact_ : list of ndarray
        Exact diagonal Fisher information per sample,
        :math:`\\frac1N\\sum_n I(\\theta_i \\mid x_n)`, one array per
        parameter array of the model (see ``parameter_names_``).

    estimates_ : dict
        ``{"score": [...], "hessian": [...]}`` (the keys selected by
        ``method``): the sampled estimates, averaged over the rows and the
        ``M`` draws; same layout as ``fisher_exact_``.

    variances_ : dict
        Closed-form variances of ``estimates_`` given ``X``,
        :math:`\\frac{1}{N^2 M}\\sum_n V_k(\\theta_i \\mid x_n)`.

    empirical_variances_ : dict
        Unbiased Monte Carlo estimates of ``variances_`` from the drawn labels,
        :math:`\\frac{1}{N^2M^2}\\sum_{n,m}(\\hat I_{k,nm} - I(\\theta_i\\mid x_n))^2`
        (valid for any ``M`` because the conditional mean is known exactly).

    x_variances_ : list of ndarray
        The part of the variance that comes from drawing ``x``: the unbiased
        sample variance over the rows of the per-sample exact Fisher
        :math:`I(\\theta_i \\mid x_n)`, divided by ``N``.  It is the same for
        both estimators, so when ``X`` is itself a sample, the variance of
        either estimate is ``variances_[k] + x_variances_`` (the law of total
        variance, :math:`\\frac1N(E_x V_k/M + \\mathrm{Var}_x I)`; Soen & Sun
        state it for ``M = 1``).

    variance_bounds_ : dict
        ``{key: {"lower": [...], "upper": [...]}}``: the eigenvalue bounds on
        ``variances_`` (see the User Guide); ``lower <= variances_ <= upper`` up to
        rounding.

    recommended_ : list of ndarray of str or None
        For ``method="both"``, per parameter, ``"score"`` where
        :math:`\\hat I_1` has the strictly lower closed-form variance and
        ``"hessian"`` otherwise; None for the other methods.

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
        "method": [StrOptions({"both", "score", "hessian"})],
        "n_label_samples": [Interval(Integral, 1, None, closed="left")],
        "noise_variance": [Interval(Real, 0.0, None, closed="neither"), StrOptions({"auto"})],
        "random_state": ["random_state"],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, estimator=None, *, method="both", n_label_samples=1,
                 noise_variance=1.0, random_state=None, batch_size=None):
        self.estimator = estimator
        self.method = method
        self.n_label_samples = n_label_samples
        self.noise_variance = noise_variance
        self.random_state = random_state
        self.batch_size = batch_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the diagonal Fisher information and its estimators on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs; labels are drawn from the fitted model, never taken from
            data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), \
                default=None
            Used only by ``noise_variance="auto"`` (regression residuals).

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
        X = validate_data(self, X, dtype=np.float64, order="C")
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
            self.noise_variance_ = self._noise_variance(net, X, y)
            inv_sigma2 = 1.0 / self.noise_variance_

        with_score = self.method in ("both", "score")
        with_hessian = self.method in ("both", "hessian")
        stats = fisher_statistics(
            net, X, inv_sigma2=inv_sigma2, n_draws=self.n_label_samples,
            random_state=self.random_state, with_score=with_score,
            with_hessian=with_hessian, batch_size=self.batch_size,
        )
        keys = [k for k, on in (("score", with_score), ("hessian", with_hessian)) if on]
        self.parameter_names_ = self._names(net)
        self.fisher_exact_ = self._layout(net, stats["fisher"])
        self.estimates_ = {k: self._layout(net, stats[k]) for k in keys}
        self.variances_ = {k: self._layout(net, stats["var_" + k]) for k in keys}
        self.empirical_variances_ = {k: self._layout(net, stats["evar_" + k]) for k in keys}
        self.x_variances_ = self._layout(net, stats["x_variance"])
        self.variance_bounds_ = {
            k: {"lower": self._layout(net, stats["lower_" + k]),
                "upper": self._layout(net, stats["upper_" + k])}
            for k in keys
        }
        if self.method == "both":
            self.recommended_ = [
                np.where(v1 < v2, "score", "hessian")
                for v1, v2 in zip(self.variances_["score"], self.variances_["hessian"])
            ]
        else:
            self.recommended_ = None
        return self

    def _network(self, X, y, net):
        """Hook for tests: the network to analyse (default: the wrapped model's)."""
        return net

    def _noise_variance(self, net, X, y):
        if self.noise_variance != "auto":
            return float(self.noise_variance)
        if y is None:
            raise ValueError("noise_variance='auto' needs the targets: call fit(X, y).")
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        check_consistent_length(X, y)
        y = y.reshape(X.shape[0], -1)
        if y.shape[1] != net.n_outputs:
            raise ValueError(f"y has {y.shape[1]} outputs, the model has {net.n_outputs}.")
        residual = y - net.predict_natural(X)
        dof = X.shape[0] - (X.shape[1] + 1 if net.kind == "linear" else 0)
        if dof <= 0:
            raise ValueError("noise_variance='auto' needs more samples than parameters.")
        sigma2 = float((residual**2).sum() / (dof * net.n_outputs))
        if not sigma2 > 0:
            raise ValueError("The residual variance is zero; pass noise_variance explicitly.")
        return sigma2

    @staticmethod
    def _names(net):
        if net.kind == "linear":
            return ["coef_"] + (["intercept_"] if net.intercept_shape is not None else [])
        L = len(net.coefs)
        return [f"coefs_[{i}]" for i in range(L)] + [f"intercepts_[{i}]" for i in range(L)]

    @staticmethod
    def _layout(net, per_layer):
        """Map per-layer ``(weights, bias)`` pairs to the model's parameter layout."""
        if net.kind == "linear":
            weights, bias = per_layer[0]
            coef = weights.T.reshape(net.coef_shape).copy()
            if net.intercept_shape is None:
                return [coef]
            return [coef, bias.reshape(net.intercept_shape).copy()]
        return [w for w, _ in per_layer] + [b for _, b in per_layer]
