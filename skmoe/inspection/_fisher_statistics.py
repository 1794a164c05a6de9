"""The statistics behind :class:`~skmoe.inspection.DiagonalFisherEstimator`.

Pure functions of a fitted model and the data, with no estimator state:

* :func:`_extract_network` describes a fitted scikit-learn model as a plain
  :class:`_Network` of affine layers (the only place that knows the
  supported model classes);
* :func:`fisher_statistics` makes the passes over the data: dense products
  through BLAS, per-unit statistics in the numba kernels of
  :mod:`skmoe.inspection._fisher_numba`;
* :func:`score_diagonal` is the fast path of the squared-score estimator
  alone (used by the benchmarks).

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
    random_state : int, RandomState instance or None, default=None
        Draws the labels (through :func:`~sklearn.utils.check_random_state`:
        the estimator passes its fit's one ``RandomState`` instance).
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
