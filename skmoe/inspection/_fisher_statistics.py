"""The statistics behind :class:`~skmoe.inspection.DiagonalFisherEstimator`.

Pure functions of a fitted model and the data, with no estimator state:

* :func:`_extract_network` describes a fitted scikit-learn model as a plain
  :class:`_Network` of affine layers (the only place that knows the
  supported model classes);
* :func:`fisher_statistics` makes the passes over the data: dense products
  through BLAS, per-unit statistics in the numba kernels of
  :mod:`skmoe.inspection._fisher_numba`.  It is
  :func:`accumulate_statistics` (unnormalised sums over row blocks, which
  the Dask path of :mod:`skmoe.inspection._fisher_dask` runs per chunk)
  followed by :func:`finalize_statistics`.

Everything is computed in float64.
"""

import numpy as np
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..utils._threading import blas_limited
from ..utils._validation import draw_seed

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
# Bound on the sampled residuals of one block (ceil(w) * M labels per row,
# C entries each): 2 GiB of float64.
_MAX_DRAW_ENTRIES = 1 << 28
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


def virtual_copies(sample_weight):
    """The virtual copies behind a sample weight.

    A row of weight ``s`` stands for ``c = ceil(s)`` virtual copies of weight
    ``u = s / c`` each; every copy gets its own ``M`` labels.  An integer
    weight is thus exactly that many repeated rows, and a zero weight no
    row at all, for the sampled estimators as for the exact quantities.

    Parameters
    ----------
    sample_weight : ndarray of shape (n,)
        Non-negative, finite.

    Returns
    -------
    copies : ndarray of shape (n,), int64
    copy_weight : ndarray of shape (n,)
        ``s / c``, and 0 where ``s = 0``.
    """
    copies = np.ceil(sample_weight).astype(np.int64)
    copy_weight = np.divide(sample_weight, copies, out=np.zeros_like(sample_weight),
                            where=copies > 0)
    return copies, copy_weight


def has_hessian_term(net):
    """Whether ``w = d^2 h / d theta^2`` can be nonzero (sigmoid or tanh hidden layers).

    Otherwise (ReLU, identity, linear models) ``h`` is piecewise linear in
    each parameter: the Hessian estimator equals the exact diagonal and its
    variance is zero.
    """
    return net.activation in ("logistic", "tanh") and len(net.coefs) >= 2


def statistic_names(net, estimators, with_variances):
    """The statistics a fit computes, and those it knows without computing them.

    Parameters
    ----------
    net : _Network
    estimators : set of {"exact", "score", "hessian"}
    with_variances : bool

    Returns
    -------
    names2, names4 : list of str
        The statistics weighted by ``a_j^2`` and by ``a_j^4``: subsets of
        ``NAMES2`` and ``NAMES4``, in their order.  The exact diagonal is
        included whenever the others need it anyway (the Hessian estimator
        and every variance are functions of it).
    implied : dict
        ``{name: "zero" or source name}``: statistics that are identically
        zero, or equal to another one, and are filled in by
        :func:`finalize_statistics` instead of being computed.  These are the
        lower bound of ``V_1`` with several outputs (``lambda_min(K) = 0``,
        see :func:`~._fisher_numba.eigen_constants`), and, without a Hessian
        term, the Hessian estimator (the exact diagonal) and its variances.
    """
    need_exact = "exact" in estimators or "hessian" in estimators or with_variances
    implied = {}
    if "hessian" in estimators and not has_hessian_term(net):
        implied["hessian"] = "fisher"
        if with_variances:
            implied.update(dict.fromkeys(
                ["var_hessian", "evar_hessian", "lower_hessian", "upper_hessian"], "zero"))
    if with_variances and "score" in estimators and net.n_outputs > 1:
        implied["lower_score"] = "zero"
    names2 = [name for name in _k.NAMES2
              if (name in estimators or (name == "fisher" and need_exact))
              and name not in implied]
    names4 = []
    if with_variances:
        names4 = [name for name in _k.NAMES4
                  if (name == "fisher_sq" or name.rsplit("_", 1)[1] in estimators)
                  and name not in implied]
    return names2, names4, implied


def accumulate_statistics(net, X, sample_weight, first_copy, *, seed, names2, names4,
                          inv_sigma2=1.0, n_draws=1, batch_size=None):
    """Unnormalised sums of the statistics over the rows of ``X``.

    A pure function of its arguments: the sums of two consecutive row ranges
    add up to the sums of their union (up to rounding) when the second starts
    at the first's end in virtual copies, which is how the Dask path splits
    the work over chunks.

    Parameters
    ----------
    net : _Network
    X : ndarray of shape (n, n_features), float64
    sample_weight : ndarray of shape (n,)
    first_copy : int
        Global index of the first virtual copy of ``X[0]`` (the labels are
        drawn from this counter on, see :func:`virtual_copies`).
    seed : int
        Seed of the counter-based label draws.
    names2, names4 : list of str
        See :func:`statistic_names`.
    inv_sigma2 : float, default=1.0
    n_draws : int, default=1
    batch_size : int, default=None
        Rows per block (memory only: the draws do not depend on it).

    Returns
    -------
    sums : tuple
        ``(total_weight, *sums2, *sums4)``: the sum of the weights, then per
        layer the ``(n_l + 1, len(names2) * n_{l+1})`` sums of the
        statistics weighted by ``a_j^2`` (last row: the bias, ``a = 1``),
        then likewise for ``names4`` and ``a_j^4``.
    """
    n_samples = X.shape[0]
    sums2 = [np.zeros((c.shape[0] + 1, len(names2) * c.shape[1])) for c in net.coefs]
    sums4 = [np.zeros((c.shape[0] + 1, len(names4) * c.shape[1])) for c in net.coefs]
    copies, copy_weight = virtual_copies(sample_weight)
    offsets = first_copy + np.concatenate([[0], np.cumsum(copies)])
    block = _block_size(net, batch_size, n_samples)
    # One BLAS thread: see :func:`_fisher_numba.row_matmul`.
    with blas_limited():
        for start in range(0, n_samples, block):
            rows = slice(start, min(start + block, n_samples))
            _accumulate_block(net, X[rows], sample_weight[rows], copies[rows],
                              copy_weight[rows], offsets[rows], seed, names2, names4,
                              inv_sigma2, int(n_draws), sums2, sums4)
    return (float(sample_weight.sum()), *sums2, *sums4)


def _with_ones(a):
    """``[a, 1]``: the extra column of ones carries the bias sums in the same product."""
    out = np.empty((a.shape[0], a.shape[1] + 1))
    out[:, :-1] = a
    out[:, -1] = 1.0
    return out


def _draw_rows(row_ptr):
    """The row of each draw."""
    return np.repeat(np.arange(len(row_ptr) - 1), np.diff(row_ptr))


def _accumulate_block(net, X, row_weight, copies, copy_weight, first_copy, seed, names2,
                      names4, inv_sigma2, M, sums2, sums4):
    """Add the statistics of one block of rows to ``sums2`` and ``sums4`` (in place)."""
    L = len(net.coefs)
    C = net.n_outputs
    n = X.shape[0]
    acts, d1, d2, H = _k.forward(net.coefs, net.intercepts, net.activation, X)
    mean, var, mu4 = _k.output_moments(net.family, H, inv_sigma2)
    with_score = "score" in names2
    with_hessian = "hessian" in names2
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    if with_score or with_hessian:
        np.cumsum(copies * M, out=row_ptr[1:])
        if row_ptr[-1] * C > _MAX_DRAW_ENTRIES:
            raise ValueError(
                f"sample_weight asks for {row_ptr[-1]} labels in one block of {n} rows "
                f"(ceil(weight) * n_label_samples each), more than fit in memory. "
                "Use smaller weights (dividing them by a constant leaves fisher_exact_ "
                "and the expected estimates unchanged; the variances scale with the "
                "total weight), fewer n_label_samples, or a smaller batch_size."
            )
        R = _k.draw_residuals(_k.SAMPLER_CODES[net.family], mean, float(inv_sigma2),
                              first_copy, copies, M, seed, row_ptr)
    else:
        R = np.zeros((0, C))
    squares = [_with_ones(a * a) for a in acts]
    if names2 == ["score"]:
        # Squared score alone: backpropagate the sampled residuals only, no
        # Jacobian (one backward pass per draw instead of C).
        if len(R) != n or not np.all(copies == 1):
            d1 = [d[_draw_rows(row_ptr)] for d in d1]
        deltas, _ = _k.backward_directions(net.coefs, d1, R[:, None, :])
        for layer in range(L):
            D = np.ascontiguousarray(deltas[layer + 1][:, 0, :])
            U = np.empty((n, D.shape[1]))
            _k.squared_score_units(D, row_ptr, copy_weight, U)
            _k.add_weighted_sums(squares[layer], U, sums2[layer])
        return

    nonlinear = has_hessian_term(net)
    with_variances = bool(names4)
    deltas, pre = _k.backward_directions(
        net.coefs, d1, np.ascontiguousarray(np.broadcast_to(np.eye(C), (n, C, C))))
    hs = hs_r = None
    if with_hessian and nonlinear and with_variances:
        # all C output Hessians: needed for V_2 = w^T I w
        hs = _k.hessian_units(net.coefs, d1, d2, pre)
    elif with_hessian and nonlinear:
        # S_2 only needs rbar^T w for the sum rbar of a row's draws: one direction
        rbar = np.zeros((n, C))
        np.add.at(rbar, _draw_rows(row_ptr), R)
        _, pre_r = _k.backward_directions(net.coefs, d1, rbar[:, None, :])
        hs_r = _k.hessian_units(net.coefs, d1, d2, pre_r)
    bounds = np.zeros((n, 4))
    if with_variances:
        li_min, li_max, lk_min, lk_max, lh_min = _k.eigen_constants(
            net.family, mean, var, mu4, inv_sigma2)
        bounds[:, 0] = np.maximum(0.0, lk_min - li_max**2)
        bounds[:, 1] = lk_max - li_min**2
        bounds[:, 2] = lh_min
        bounds[:, 3] = li_max
    slot2 = np.array([names2.index(x) if x in names2 else -1 for x in _k.NAMES2])
    slot4 = np.array([names4.index(x) if x in names4 else -1 for x in _k.NAMES4])
    no_hs, no_hr = np.zeros((0, 0, 0)), np.zeros((0, 0))
    for layer in range(L):
        m = layer + 1
        B = np.ascontiguousarray(deltas[m])
        K = B.shape[2]
        hess_mode, Hs, Hr = _k.HESSIAN_NONE, no_hs, no_hr
        if hs is not None and m < L:
            hess_mode, Hs = _k.HESSIAN_FULL, np.ascontiguousarray(hs[m])
        elif hs_r is not None and m < L:
            hess_mode, Hr = _k.HESSIAN_SAMPLED, np.ascontiguousarray(hs_r[m][:, 0, :])
        U2 = np.empty((n, len(names2) * K))
        U4 = np.empty((n, len(names4) * K))
        _k.unit_statistics(_k.FAMILY_CODES[net.family], B, Hs, Hr, hess_mode, R, row_ptr,
                           mean, var, mu4, float(inv_sigma2), row_weight, copy_weight,
                           bounds, slot2, slot4, U2, U4)
        _k.add_weighted_sums(squares[layer], U2, sums2[layer])
        if names4:
            a2 = squares[layer]
            _k.add_weighted_sums(a2 * a2, U4, sums4[layer])


#: Normalisation of each statistic: powers of the total weight ``W`` and of
#: the number of draws ``M``.
_SCALES = {"fisher": (1, 0), "score": (1, 1), "hessian": (1, 1), "fisher_sq": (1, 0),
           "var_score": (2, 1), "evar_score": (2, 2), "lower_score": (2, 1),
           "upper_score": (2, 1), "var_hessian": (2, 1), "evar_hessian": (2, 2),
           "lower_hessian": (2, 1), "upper_hessian": (2, 1)}


def finalize_statistics(net, sums, names2, names4, implied, n_draws):
    """Normalise the sums of :func:`accumulate_statistics` into the statistics.

    Parameters
    ----------
    net : _Network
    sums : tuple
        As returned by :func:`accumulate_statistics` (or a sum of them).
    names2, names4, implied
        As returned by :func:`statistic_names`.
    n_draws : int

    Returns
    -------
    stats : dict
        ``{name: [(weights, bias) per layer]}`` for the computed and the
        implied names, with ``"fisher_sq"`` replaced by ``"x_variance"``.
    """
    L = len(net.coefs)
    total_weight, sums2, sums4 = sums[0], sums[1:L + 1], sums[L + 1:]
    stats = {}
    for per_layer, names in ((sums2, names2), (sums4, names4)):
        for i, name in enumerate(names):
            power_w, power_m = _SCALES[name]
            scale = total_weight**power_w * float(n_draws)**power_m
            stats[name] = []
            for layer in range(L):
                K = net.coefs[layer].shape[1]
                block_ = per_layer[layer][:, i * K:(i + 1) * K] / scale
                stats[name].append((block_[:-1], block_[-1]))
    for name, source in implied.items():
        if source == "zero":
            stats[name] = [tuple(np.zeros_like(a) for a in pair) for pair in stats["fisher"]]
        else:
            stats[name] = [tuple(a.copy() for a in pair) for pair in stats[source]]
    if "fisher_sq" in stats:
        # Unbiased sample variance over rows of I(theta | x_n), divided by N
        # (frequency weights: N = sum of the weights): the x-part of the
        # variance of any unbiased estimator when x is random.
        denominator = max(total_weight - 1.0, 1.0)
        stats["x_variance"] = [
            tuple((sq - f * f) / denominator for sq, f in zip(pair_sq, pair))
            for pair_sq, pair in zip(stats.pop("fisher_sq"), stats["fisher"])
        ]
    return stats


def fisher_statistics(net, X, *, sample_weight=None, inv_sigma2=1.0, n_draws=1,
                      random_state=None, estimators=("exact", "score", "hessian"),
                      with_variances=True, batch_size=None):
    """Diagonal Fisher information, its estimators, their variances and bounds.

    Parameters
    ----------
    net : _Network
    X : ndarray of shape (n_samples, n_features), float64
    sample_weight : ndarray of shape (n_samples,), default=None
        Non-negative frequency weights (see :func:`virtual_copies`); None
        for ones.
    inv_sigma2 : float, default=1.0
        ``1 / noise_variance`` (Gaussian family only).
    n_draws : int, default=1
        Labels drawn from the model per (virtual) sample (``M``).
    random_state : int, RandomState instance or None, default=None
        Draws the one seed of the counter-based labels (through
        :func:`~sklearn.utils.check_random_state`: the estimator passes its
        fit's one ``RandomState`` instance).
    estimators : collection of {"exact", "score", "hessian"}
        What to compute (see :func:`statistic_names`).
    with_variances : bool, default=True
        Also compute the closed-form and empirical variances, the bounds and
        the x-variance.  Without them, the Hessian estimator backpropagates
        one summed sampled direction instead of all ``C`` outputs, and the
        score estimator alone needs no Jacobian.
    batch_size : int, default=None
        Rows per block.

    Returns
    -------
    stats : dict
        Keys: ``"fisher"`` (if computed), the selected estimators, and with
        variances ``"var_k"``, ``"evar_k"``, ``"lower_k"``, ``"upper_k"``
        for each and ``"x_variance"``; each a list of per-layer
        ``(weights, bias)`` pairs shaped like ``net.coefs`` and
        ``net.intercepts``.
    """
    seed = draw_seed(check_random_state(random_state))
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    names2, names4, implied = statistic_names(net, set(estimators), with_variances)
    sums = accumulate_statistics(net, X, sample_weight, 0, seed=seed, names2=names2,
                                 names4=names4, inv_sigma2=inv_sigma2, n_draws=n_draws,
                                 batch_size=batch_size)
    return finalize_statistics(net, sums, names2, names4, implied, n_draws)
