"""Mixture of two-layer experts with a linear router, trained by staged online SGD.

The stage loops are numba kernels in :mod:`skmoe.neural_network._sgd_moe_numba` (one call
per stage); the second layers are fitted by a ridge regression in NumPy.
"""

from numbers import Real

import numpy as np
from scipy import linalg
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from . import _sgd_moe_numba as _kernels
from ..utils._monitor import ConvergenceMonitor, concatenate_histories
from ..utils._numba_math import hermite_basis
from ..utils._threading import blas_limited, block_partition, run_blocks
from ..utils._validation import (
    StrictIntInterval,
    check_finite_output,
    check_fitted_input,
    check_int,
    check_min_samples,
    fit_context,
    snapshot_params,
    warn_deprecated_param,
)

# Records (monitor reports) per SGD stage.
_N_RECORDS = 50
_STAGE_NAMES = ("neurons", "router", "routed experts", "ridge")
# Fresh points per cluster used to measure router accuracy.
_N_ROUTER_TEST = 10_000
# Rows per chunk when forming second-layer features.
_CHUNK = 4096
# Step size constants (see the class docstring, "Defaults").
_NEURON_LR = 0.1
_ROUTER_LR = 4.0


def _unit_rows(A):
    """Normalise the last axis of ``A`` to unit length, in place."""
    A /= np.linalg.norm(A, axis=-1, keepdims=True)
    return A


def _gates(X, router, top_k):
    """Gates of shape (n_rows, n_experts): softmax over the ``top_k`` best scores.

    Scores are ``X @ router.T``; the row-wise kernel
    :func:`skmoe.neural_network._sgd_moe_numba.topk_gates_rows` is the one used by the
    SGD stages (ties go to the lowest expert index).
    """
    scores = np.ascontiguousarray(X @ router.T, dtype=np.float64)
    gates = np.empty_like(scores)
    _kernels.topk_gates_rows(scores, min(top_k, scores.shape[1]), gates)
    return gates


def _features(X, W_m, degree):
    """``h_1 .. h_degree`` of the neurons ``W_m``: (n_rows, n_neurons * degree)."""
    return hermite_basis(X @ W_m.T, degree)[..., 1:].reshape(X.shape[0], -1)


def systematic_resample(weights, n_draws, random_state):
    """Row indices drawn in proportion to ``weights`` by systematic resampling.

    One uniform ``u`` is drawn and the points ``(u + j) / n_draws``,
    ``j = 0 .. n_draws - 1``, are located on the cumulative normalised
    weights, so row ``i`` is drawn ``floor`` or ``ceil`` of
    ``n_draws * weights[i] / sum(weights)`` times (the lowest-variance
    unbiased scheme; a row of zero weight is never drawn).  The draws are
    returned in a random order, so that SGD does not see a row's copies one
    after the other.

    Parameters
    ----------
    weights : ndarray of shape (n_rows,)
        Non-negative, with a positive sum.
    n_draws : int
    random_state : RandomState

    Returns
    -------
    indices : ndarray of shape (n_draws,), dtype int64
        Indices into ``weights``.
    """
    if n_draws == 0:
        return np.empty(0, dtype=np.int64)
    cumulative = np.cumsum(weights, dtype=np.float64)
    cumulative /= cumulative[-1]
    points = (random_state.uniform() + np.arange(n_draws)) / n_draws
    indices = np.searchsorted(cumulative, points, side="right")
    # Rounding can leave the last point a hair above the last cumulative sum.
    indices = np.minimum(indices, weights.shape[0] - 1).astype(np.int64)
    return indices[random_state.permutation(n_draws)]


def _ridge(X, y, degree, W, router, top_k, alpha, sample_weight=None):
    """Joint ridge regression of all experts' second layers on gated features.

    ``W`` (n_experts, n_neurons, n_features) and ``router`` are the
    first-layer neurons and router weights being fitted.  With
    ``sample_weight`` the squared errors are weighted and the penalty is
    ``alpha`` times the total weight (a row of integer weight ``w`` counts as
    ``w`` rows).  Returns ``(coef, intercept, mse)``: shapes
    (n_experts, n_neurons, degree) and (n_experts,), and the (weighted) mean
    squared training error of the fit.
    """
    weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    total_weight = float(weights.sum())
    M, J = W.shape[:2]
    width = J * degree + 1
    dim = M * width
    gram = np.zeros((dim, dim))
    rhs = np.zeros(dim)
    y_norm2 = float(weights @ (y * y))
    for start in range(0, X.shape[0], _CHUNK):
        Xc = X[start : start + _CHUNK]
        gates = _gates(Xc, router, top_k)
        Phi = np.empty((Xc.shape[0], dim))
        for m in range(M):
            block = slice(m * width, (m + 1) * width)
            Phi[:, block] = np.column_stack(
                [np.ones(Xc.shape[0]), _features(Xc, W[m], degree)]
            ) * gates[:, m : m + 1]
        weighted = Phi * weights[start : start + _CHUNK, None]
        gram += weighted.T @ Phi
        rhs += weighted.T @ y[start : start + _CHUNK]
    penalty = np.full(dim, alpha * total_weight)
    penalty[::width] = 0.0  # intercepts are not penalised
    gram[np.diag_indices(dim)] += penalty
    beta = None
    if np.all(np.isfinite(gram)) and np.all(np.isfinite(rhs)):
        # Minimum-norm least squares (SVD): an expert that receives no rows
        # has a zero block and gets zero coefficients.
        beta = linalg.lstsq(gram, rhs)[0]
    if beta is None or not np.all(np.isfinite(beta)):
        raise ValueError(
            "The second-layer ridge regression failed (non-finite normal "
            "equations or solution); change alpha or rescale X."
        )
    # Training residual from the normal equations: |y|^2 - 2 b.rhs + b G0 b,
    # with G0 the Gram matrix without the penalty.
    rss = y_norm2 - 2.0 * beta @ rhs + beta @ (gram @ beta) - beta @ (penalty * beta)
    mse = max(float(rss), 0.0) / total_weight
    beta = beta.reshape(M, width)
    return beta[:, 1:].reshape(M, J, degree), beta[:, 0].copy(), mse


def _router_accuracy(router, truth, n_per_cluster=_N_ROUTER_TEST, seed=0):
    """Top-1 routing accuracy on fresh cluster draws, up to a relabelling.

    Draws ``x = rho v_c + z`` for every cluster (a fixed seed, so the value
    is deterministic) and maximises agreement over one-to-one maps from
    clusters to experts (Hungarian algorithm on the confusion matrix).
    """
    means = np.asarray(truth["cluster_means"], dtype=np.float64)
    n_clusters, d = means.shape
    rng = np.random.RandomState(seed)
    confusion = np.zeros((n_clusters, router.shape[0]))
    for c in range(n_clusters):
        x = truth["separation"] * means[c] + rng.standard_normal((n_per_cluster, d))
        experts = np.argmax(x @ router.T, axis=1)
        confusion[c] = np.bincount(experts, minlength=router.shape[0])
    rows, cols = linear_sum_assignment(-confusion)
    return float(confusion[rows, cols].sum() / confusion.sum())


def _overlaps(W, truth):
    """``(max |w . w_c| per cluster, max |w . w_g| per expert)`` for neurons ``W``.

    ``W`` has shape (n_experts, n_neurons, n_features).
    """
    directions = np.asarray(truth["cluster_directions"], dtype=np.float64)
    w_g = np.asarray(truth["global_direction"], dtype=np.float64)
    cluster = np.abs(W.reshape(-1, W.shape[-1]) @ directions.T).max(axis=0)
    global_ = np.abs(W @ w_g).max(axis=1)
    return cluster, global_


def _check_truth(truth, n_features):
    """Check the ground-truth dict of ``make_latent_cluster_regression``.

    Raises a ValueError naming the key that is missing, not finite, of the
    wrong type or of the wrong shape.
    """
    keys = ("cluster_means", "separation", "cluster_directions", "global_direction")
    if not isinstance(truth, dict) or any(key not in truth for key in keys):
        raise ValueError(
            "truth must be the dict returned by make_latent_cluster_regression("
            f"..., return_truth=True), with keys {list(keys)}."
        )
    validate_parameter_constraints(
        {"separation": [Interval(Real, 0.0, None, closed="left")]},
        {"separation": truth["separation"]},
        caller_name="the truth dict",
    )
    arrays = {}
    for key in ("cluster_means", "cluster_directions", "global_direction"):
        try:
            arrays[key] = check_array(
                truth[key], ensure_2d=False, allow_nd=True, dtype=np.float64
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"truth[{key!r}] must be a finite real array: {exc}") from exc
    if arrays["global_direction"].shape != (n_features,):
        raise ValueError(
            f"truth has directions of dimension {arrays['global_direction'].shape}, "
            f"but the model has {n_features} features."
        )
    means = arrays["cluster_means"]
    if means.ndim != 2 or means.shape[1] != n_features:
        raise ValueError(
            "truth['cluster_means'] must have shape (n_clusters, n_features="
            f"{n_features}), got shape {means.shape}."
        )
    if arrays["cluster_directions"].shape != means.shape:
        raise ValueError(
            "truth['cluster_directions'] must have the shape of truth['cluster_means'] "
            f"(one direction per cluster), {means.shape}, got shape "
            f"{arrays['cluster_directions'].shape}."
        )


class SGDMoERegressor(RegressorMixin, BaseEstimator):
    """Mixture of two-layer experts with a linear router, trained by staged online SGD.

    Expert ``m`` is a two-layer network of ``J = n_neurons`` unit-norm neurons
    ``w_{m,j}``; the router scores ``theta_m^T x`` and sends ``x`` to the
    ``top_k`` best experts, weighted by a softmax over their scores.  The
    prediction is

    .. math::

        \\hat y(x) = \\sum_{m \\in \\mathrm{top}_k(x)} \\pi_m(x) \\Big(b_m +
            \\sum_{j=1}^{J} \\sum_{i=1}^{p} a_{m,j,i}\\, h_i(w_{m,j}^\\top x)\\Big),

    with normalised Hermite polynomials ``h_i = He_i / sqrt(i!)``.  Training
    follows the staged scheme of Kawata et al. (ICML 2025) for data with a
    latent cluster structure (see
    :func:`~skmoe.datasets.make_latent_cluster_regression`).  The rows are
    split, in an order drawn from ``random_state``, into three disjoint
    shares (``stages``), one per SGD stage; by default each SGD stage makes
    one pass over its share, so every row takes part in at most one SGD
    stage and in it is used once (an explicit ``n_steps`` can cycle through
    a share several times).  Stage 2 reads its rows twice (to score the
    neurons, then for the router SGD; with an empty share it scores on all
    rows), and the ridge regression of stage 4 reuses all the rows:

    1. **Neurons (pooled).**  ``max(min(n_experts * n_neurons, n_features),
       n_experts)`` neurons (at least one per expert) with random signs
       ``a = +-1`` are trained by spherical online SGD on the correlation
       loss ``-y a h_k(w^T x)`` (``k = information_exponent``),
       Gram-Schmidt-orthogonalised after every step (unless the pool has
       more than ``n_features`` neurons, which happens only when
       ``n_experts > n_features``).
       The router is not used: every sample reaches every neuron.  Each neuron
       then weakly recovers at most one cluster direction ``w_c``; the pooled
       signal along the global direction cancels.
    2. **Router.**  The neurons are scored by ``|mean(y h_k(w^T x))|`` on the
       rows of this stage; expert ``m`` is seeded with the ``m``-th best
       (with the sign of its score), and the router is trained by online SGD
       on the correlation loss of the softmax mixture of these one-neuron
       experts.  ``theta_m`` turns towards the mean of the cluster that expert
       ``m`` fits.
    3. **Experts under routing.**  Each expert keeps its seed neuron and gets
       ``n_neurons - 1`` fresh random ones (orthogonalised); spherical SGD as
       in stage 1, but each sample updates only its routed experts.  Within a
       cluster the global task no longer cancels, so a neuron recovers
       ``w_g``.
    4. **Second layer.**  The coefficients ``a_{m,j,i}`` (``i = 1..degree``)
       and intercepts ``b_m`` are fitted jointly by ridge regression on all
       rows, with gated features ``pi_m(x) h_i(w_{m,j}^T x)``.

    With ``n_experts=1`` the same code is the single-network baseline (the
    router is then inert).  Read more in the :ref:`User Guide <sgd_moe>`.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts ``M``.

    n_neurons : int, default=8
        Neurons per expert ``J``.

    router : {"linear"}, default="deprecated"
        Router type; the router always scores ``theta_m^T x`` (no bias).

        .. deprecated:: 0.1
           ``router`` has no effect (the linear router is the only one) and
           will be removed in 0.3.  Leave it unset to silence the
           ``FutureWarning``.

    top_k : int, default=1
        Number of experts each sample is routed to (at most ``n_experts``).

    information_exponent : int, default=3
        Degree ``k`` of the Hermite activation ``h_k`` used by the SGD stages.
        Set it to the information exponent of the target: neurons can only
        pick up a direction whose link has a non-zero ``k``-th Hermite
        coefficient.

    degree : int, default=None
        Highest Hermite degree ``p`` of the second-layer features; ``None``
        means ``information_exponent``.

    stages : tuple of 3 floats, default=(0.4, 0.1, 0.5)
        Fractions of the rows used by SGD stages 1, 2 and 3 (consecutive
        slices of a random permutation); must sum to at most one.

    learning_rates : tuple of 3 floats, default=None
        Step sizes of stages 1, 2 and 3.  ``None`` gives
        ``(0.1 d^{-k/2}, 4 / T_2, 0.1 d^{-k/2})`` where ``T_2`` is the
        number of router steps (see Notes).

    n_steps : tuple of 3 ints, default=None
        SGD steps per stage.  ``None`` means one pass over the stage's rows
        (``rows // batch_size`` steps); larger values cycle through the
        stage's rows again.

    batch_size : int, default=1
        Rows averaged per SGD step.

    anneal : float, default=0.5
        Fraction of each neuron stage (1 and 3) after which the step size
        decays harmonically, to 1/20 of its initial value at the end.

    alpha : float, default=1e-6
        Ridge penalty of the second layer, per sample.

    random_state : int, RandomState instance or None, default=None
        Seeds the row order, the initial neurons and their signs.

    verbose : int, default=0
        Progress of the four stages, in the one line format of skmoe's
        convergence monitor (record, objective, change, elapsed time, time
        left), labelled ``"SGDMoERegressor stage <s>/4 (<name>)"``: 0 prints
        nothing, 1 a line every tenth record of an SGD stage (see
        ``history_``), 2 or more every record; stage 4 prints its one record
        (the training mean squared error of the ridge fit), and every stage
        a closing line with its duration.

    Attributes
    ----------
    expert_weights_ : ndarray of shape (n_experts, n_neurons, n_features)
        Unit first-layer weights ``w_{m,j}``.  The stages run in float64;
        this and the other fitted arrays (``expert_coef_``,
        ``expert_intercept_``, ``router_coef_``) are then stored in the dtype
        of the training inputs, float32 or float64.

    expert_coef_ : ndarray of shape (n_experts, n_neurons, degree)
        Second-layer coefficients ``a_{m,j,i}`` of ``h_1 .. h_degree``.

    expert_intercept_ : ndarray of shape (n_experts,)
        Expert intercepts ``b_m``.

    router_coef_ : ndarray of shape (n_experts, n_features)
        Router weights ``theta_m``.

    learning_rates_ : tuple of 3 floats
        Step sizes used by the three SGD stages.

    n_steps_ : tuple of 3 ints
        SGD steps taken by the three stages.

    n_iter_ : int
        Total number of SGD steps.

    history_ : dict of ndarray
        The three SGD stages as recorded by their convergence monitors: each
        stage runs in intervals of ``max(1, n_steps // 50)`` steps (the last
        one shorter), so about 50 records per stage, the last after its last
        step (a stage without steps records its state once).  Equal-length
        arrays, one entry per record, stage after stage:

        - ``"iteration"``: record number within its stage (from 1);
        - ``"objective"``: mean correlation loss ``-y f(x)`` (on the
          standardised targets) of the rows used since the previous record,
          each evaluated with the parameters before the step that uses it,
          i.e. an online estimate of the stage's population loss.  ``f`` is
          the model the stage trains: the sum of the signed pool neurons
          ``sum_j a_j h_k(w_j^T x)`` in stage 1, the softmax mixture of the
          one-neuron experts in stage 2, the routed experts' gated sum in
          stage 3; NaN for a stage without steps;
        - ``"change"``: difference with the previous record of the stage
          (NaN at its first record);
        - ``"elapsed"``: seconds since the stage started;
        - ``"stage"`` (1, 2 or 3) and ``"samples"`` (SGD rows consumed so
          far, increasing).

        When ``fit`` receives ``truth``, also: ``"cluster_alignment"``
        (n_records, n_clusters), max over the current first-layer neurons of
        ``|w . w_c|``; ``"global_alignment"`` (n_records, n_experts), per
        expert max of ``|w . w_g|`` (in stage 1, where neurons are not yet
        assigned to experts, the max over all neurons; in stage 2 the expert
        seed neurons); ``"router_accuracy"`` (n_records,), see
        :meth:`alignment`.  The last record is then the final state of the
        neurons and router.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, if ``X`` had string column names.

    See Also
    --------
    skmoe.datasets.make_latent_cluster_regression : Data with latent clusters.
    sklearn.neural_network.MLPRegressor : Dense network trained by backprop.

    Notes
    -----
    **Defaults.**  The paper's algorithm and constants were not available; the
    stage plan above is this package's design, checked numerically (see the
    User Guide).  Stage 1 trains a pool of orthogonal neurons, rather than
    one tied direction per expert, because with odd ``k`` a neuron whose sign
    ``a`` disagrees with its initial overlap is pushed to the equator and stalls;
    with a pool, some neuron of the right sign reaches each cluster direction,
    and stage 2 keeps the best-scoring ones.  The neuron step size
    ``0.1 d^{-k/2}`` follows the critical scaling ``eta ~ d^{-k/2}`` of online
    SGD at information exponent ``k`` (Ben Arous, Gheissari & Jagannath 2021),
    which gives a sample complexity of order ``d^{k-1}`` per stage; the
    constant 0.1 was set at ``d = 32, k = 3``.  The router step ``4 / T_2``
    keeps ``|theta|`` of order one, so the router averages its gradients
    instead of saturating the softmax.  SGD stops after a fixed budget, so no
    ``ConvergenceWarning`` is emitted.  ``X`` is used as is: the model assumes
    unit noise scale, as in the cluster model.

    Examples
    --------
    >>> from skmoe import SGDMoERegressor
    >>> from skmoe.datasets import make_latent_cluster_regression
    >>> X, y, truth = make_latent_cluster_regression(
    ...     60_000, 16, return_truth=True, random_state=0)
    >>> moe = SGDMoERegressor(random_state=0).fit(X, y)
    >>> scores = moe.alignment(truth)
    >>> bool(scores["global"].min() > 0.9), scores["router_accuracy"] > 0.95
    (True, True)
    """

    _parameter_constraints: dict = {
        "n_experts": [StrictIntInterval(1, None, closed="left")],
        "n_neurons": [StrictIntInterval(1, None, closed="left")],
        "router": [StrOptions({"linear"}), Hidden(StrOptions({"deprecated"}))],
        "top_k": [StrictIntInterval(1, None, closed="left")],
        "information_exponent": [StrictIntInterval(1, None, closed="left")],
        "degree": [StrictIntInterval(1, None, closed="left"), None],
        "stages": ["array-like"],
        "learning_rates": ["array-like", None],
        "n_steps": ["array-like", None],
        "batch_size": [StrictIntInterval(1, None, closed="left")],
        "anneal": [Interval(Real, 0.0, 1.0, closed="both")],
        "alpha": [Interval(Real, 0.0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_experts=2,
        *,
        n_neurons=8,
        router="deprecated",
        top_k=1,
        information_exponent=3,
        degree=None,
        stages=(0.4, 0.1, 0.5),
        learning_rates=None,
        n_steps=None,
        batch_size=1,
        anneal=0.5,
        alpha=1e-6,
        random_state=None,
        verbose=0,
    ):
        self.n_experts = n_experts
        self.n_neurons = n_neurons
        self.router = router
        self.top_k = top_k
        self.information_exponent = information_exponent
        self.degree = degree
        self.stages = stages
        self.learning_rates = learning_rates
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.anneal = anneal
        self.alpha = alpha
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The default budget is tuned for the high-dimensional cluster model;
        # on the common checks' small data sets the SGD stages take few steps.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------ validation

    def _check_params(self):
        warn_deprecated_param(
            self, "router", "It has no effect: the router is always linear."
        )
        stages = np.asarray(self.stages, dtype=np.float64)
        if stages.shape != (3,) or not np.all(np.isfinite(stages)) or np.any(stages < 0):
            raise ValueError(
                f"stages must be 3 non-negative fractions, got {self.stages!r}."
            )
        if stages.sum() > 1.0 + 1e-12:
            raise ValueError(f"stages must sum to at most 1, got sum {stages.sum():.6g}.")
        if self.top_k > self.n_experts:
            raise ValueError(
                f"top_k={self.top_k} must not exceed n_experts={self.n_experts}."
            )
        if self.learning_rates is not None:
            lrs = np.asarray(self.learning_rates, dtype=np.float64)
            if lrs.shape != (3,) or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
                raise ValueError(
                    f"learning_rates must be 3 positive numbers, got {self.learning_rates!r}."
                )
        if self.n_steps is not None:
            if np.ndim(self.n_steps) != 1 or len(self.n_steps) != 3:
                raise ValueError(
                    f"n_steps must be 3 non-negative integers, got {self.n_steps!r}."
                )
            for steps in self.n_steps:
                check_int(steps, "each of n_steps", minimum=0)
        degree = self.information_exponent if self.degree is None else self.degree
        return stages, degree

    # ------------------------------------------------------------------ fit

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, truth=None, sample_weight=None):
        """Train the experts and the router in stages on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        truth : dict, default=None
            Ground truth from
            :func:`~skmoe.datasets.make_latent_cluster_regression` with
            ``return_truth=True``.  If given, the alignments are recorded
            during training in ``history_``; training itself is unchanged.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, read as frequencies.  Each SGD stage draws
            its stream from its share of the rows in proportion to the
            weights (systematic resampling, as many draws as the share has
            rows), so a row of weight ``w`` is visited about ``w`` times as
            often as a row of weight one; the stage-2 neuron scores, the
            standardisation of ``y`` and the ridge regression of stage 4 are
            weighted (the penalty is ``alpha`` times the total weight).
            Rows of zero weight are dropped.  Integer weights therefore
            match repeated rows in distribution, not bit for bit: the SGD
            streams differ.

        Returns
        -------
        self : SGDMoERegressor
            Fitted estimator.

        Raises
        ------
        ValueError
            If ``n_samples < n_experts``, or if ``truth`` is not such a dict
            (missing key, non-finite or negative ``separation``, non-finite
            arrays, or shapes that do not match ``n_features`` or one another).
        """
        X, y = validate_data(
            self, X, y, y_numeric=True, dtype=[np.float64, np.float32], order="C"
        )
        stages, degree = self._check_params()
        if truth is not None:
            _check_truth(truth, X.shape[1])
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            keep = np.flatnonzero(weights > 0)
            if keep.size == 0:
                raise ValueError("sample_weight must give a positive weight to some sample.")
            if keep.size < weights.size:
                # A row of zero weight takes no part in any stage.
                X, y, weights = X[keep], y[keep], weights[keep]
        n_samples, d = X.shape
        check_min_samples(n_samples, self.n_experts, "n_experts")
        M, J, k = self.n_experts, self.n_neurons, self.information_exponent
        # Overflow is reported by one clear error (check_finite_output), not
        # warned about.  The second layer regresses on Hermite features of
        # degree p of unit projections, whose squares reach |x|^(2p): inputs
        # beyond that overflow the normal equations, after every SGD stage.
        p = max(k, degree)
        with np.errstate(over="ignore", invalid="ignore"):
            centred = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
            sq_norms = np.einsum("ij,ij->i", centred, centred)
            check_finite_output(
                sq_norms**p,
                f"squared norm of the centred training inputs to the power {p} "
                "(the scale of the squared Hermite features)",
            )
            del centred, sq_norms
            y64 = np.asarray(y, dtype=np.float64)
            y_mean = np.average(y64, weights=weights)
            scale = np.sqrt(np.average((y64 - y_mean) ** 2, weights=weights))
            check_finite_output(scale, "standard deviation of the targets")
        rng = check_random_state(self.random_state)
        y_std = np.ascontiguousarray((y64 - y_mean) / (scale if scale > 0 else 1.0))

        # Row streams of the three SGD stages.
        perm = rng.permutation(n_samples)
        bounds = np.concatenate([[0], np.floor(np.cumsum(stages) * n_samples)]).astype(int)
        shares = [perm[bounds[s] : bounds[s + 1]] for s in range(3)]
        if weights is None:
            rows = shares
        else:
            # Each stage's rows, resampled in proportion to their weights.
            rows = [
                share[systematic_resample(weights[share], len(share), rng)]
                for share in shares
            ]
        if self.n_steps is None:
            steps = [len(r) // self.batch_size for r in rows]
        else:
            steps = [int(s) if len(r) > 0 else 0 for s, r in zip(self.n_steps, rows)]
        streams = [
            r[np.arange(s * self.batch_size) % len(r)] if s > 0 else np.empty(0, np.int64)
            for r, s in zip(rows, steps)
        ]
        streams = [np.ascontiguousarray(s, dtype=np.int64) for s in streams]
        if self.learning_rates is None:
            neuron_lr = _NEURON_LR * float(d) ** (-k / 2.0)
            lrs = (neuron_lr, _ROUTER_LR / max(steps[1], 1), neuron_lr)
        else:
            lrs = tuple(float(v) for v in self.learning_rates)

        router = np.zeros((M, d))
        uniform_accuracy = None if truth is None else _router_accuracy(router, truth)

        # Stage 1: a pool of orthogonal neurons on the pooled stream.
        n_probes = max(min(M * J, d), M)
        probes = _unit_rows(rng.standard_normal((1, n_probes, d)))
        if n_probes <= d:
            _kernels._gram_schmidt(probes[0])
        probe_signs = np.where(rng.uniform(size=(1, n_probes)) < 0.5, -1.0, 1.0)

        def probe_columns():
            cluster, global_ = _overlaps(probes, truth)
            return dict(cluster_alignment=cluster, global_alignment=np.full(M, global_[0]),
                        router_accuracy=uniform_accuracy)

        stage_1 = self._run_stage(
            1, steps[0], 0,
            lambda first, last: _kernels.neuron_sgd(
                X, y_std, streams[0], self.batch_size, probes, probe_signs,
                np.zeros((1, d)), 1, k, lrs[0], int(self.anneal * steps[0]),
                n_probes <= d, first, last,
            ),
            None if truth is None else probe_columns,
        )

        # Stage 2: seed the experts with the best-scoring neurons, train the router.
        score_rows = shares[1] if len(shares[1]) > 0 else perm
        corr = np.average(
            y_std[score_rows, None] * hermite_basis(X[score_rows] @ probes[0].T, k)[..., k],
            axis=0,
            weights=None if weights is None else weights[score_rows],
        )
        best = np.argsort(-np.abs(corr), kind="stable")[:M]
        seeds = np.ascontiguousarray(probes[0, best])
        seed_signs = np.where(corr[best] < 0, -1.0, 1.0)
        if truth is not None:
            seed_cluster, seed_global = _overlaps(seeds[:, None, :], truth)

        def router_columns():
            return dict(cluster_alignment=seed_cluster, global_alignment=seed_global,
                        router_accuracy=_router_accuracy(router, truth))

        stage_2 = self._run_stage(
            2, steps[1], steps[0] * self.batch_size,
            lambda first, last: _kernels.router_sgd(
                X, y_std, streams[1], self.batch_size, seeds, seed_signs, k, router,
                lrs[1], first, last,
            ),
            None if truth is None else router_columns,
        )

        # Stage 3: experts under the learned routing.
        W = _unit_rows(rng.standard_normal((M, J, d)))
        W[:, 0] = seeds
        signs = np.where(rng.uniform(size=(M, J)) < 0.5, -1.0, 1.0)
        signs[:, 0] = seed_signs
        if J <= d:
            for m in range(M):
                _kernels._gram_schmidt(W[m])
        accuracy = None if truth is None else _router_accuracy(router, truth)

        def expert_columns():
            cluster, global_ = _overlaps(W, truth)
            return dict(cluster_alignment=cluster, global_alignment=global_,
                        router_accuracy=accuracy)

        stage_3 = self._run_stage(
            3, steps[2], (steps[0] + steps[1]) * self.batch_size,
            lambda first, last: _kernels.neuron_sgd(
                X, y_std, streams[2], self.batch_size, W, signs, router, self.top_k, k,
                lrs[2], int(self.anneal * steps[2]), J <= d, first, last,
            ),
            None if truth is None else expert_columns,
        )

        # Stage 4: second layer by ridge regression on all rows.
        ridge = self._monitor(4, 1, "training MSE")
        with blas_limited():  # chunk-sized products, a 50 x 50 solve
            coef, intercept, mse = _ridge(
                X, y64, degree, W, router, self.top_k, self.alpha, weights
            )
        ridge.report(mse)
        ridge.finish()

        # Fitted attributes, only once every stage has succeeded.  Inference
        # reads the snapshot of top_k, never the live hyper-parameter.
        # Trained in float64; stored in X's dtype (float32 may overflow).
        fitted = {}
        for name, value in (("expert_weights_", W), ("router_coef_", router),
                            ("expert_coef_", coef), ("expert_intercept_", intercept)):
            with np.errstate(over="ignore", invalid="ignore"):
                fitted[name] = value.astype(X.dtype, copy=False)
            check_finite_output(fitted[name], f"fitted {name} (in {X.dtype})")
        self._fitted_params = snapshot_params(self, ("top_k",))
        for name, value in fitted.items():
            setattr(self, name, value)
        self.learning_rates_ = lrs
        self.n_steps_ = tuple(int(s) for s in steps)
        self.n_iter_ = int(sum(steps))
        self.history_ = concatenate_histories([stage_1, stage_2, stage_3])
        return self

    def _monitor(self, stage, max_iter, objective_name):
        """The ``tol=None`` monitor (fixed budget) of one stage."""
        return ConvergenceMonitor(
            tol=None,
            max_iter=max_iter,
            verbose=self.verbose,
            label=f"SGDMoERegressor stage {stage}/4 ({_STAGE_NAMES[stage - 1]})",
            objective_name=objective_name,
        )

    def _run_stage(self, stage, n_steps, samples_before, run_steps, columns):
        """Run one SGD stage in recording intervals, each reported to its monitor.

        ``run_steps(first, last)`` takes the stage's steps ``first .. last - 1``
        and returns the mean correlation loss of their rows; ``columns()``
        (None without a ground truth) gives the alignment columns of the
        current state.  The intervals are ``max(1, n_steps // 50)`` steps, the
        last one shorter; a stage without steps records its (initial, which
        is also final) state once, with a NaN objective.
        """
        every = max(1, n_steps // _N_RECORDS)
        monitor = self._monitor(stage, max(1, -(-n_steps // every)), "correlation loss")

        def report(loss, steps_done):
            extra = {} if columns is None else columns()
            monitor.report(
                loss, stage=stage, samples=samples_before + steps_done * self.batch_size, **extra
            )

        if n_steps == 0:
            report(np.nan, 0)
        with blas_limited():  # a spinning BLAS pool would slow the kernel
            for first in range(0, n_steps, every):
                last = min(first + every, n_steps)
                report(run_steps(first, last), last)
        monitor.finish()
        return monitor

    # ------------------------------------------------------------- inference


    def _inference_arrays(self):
        """``(router, top_k, W, coef, intercept)`` for :func:`predict_blocks`, in float64.

        One kernel specialisation per input dtype: the (small) fitted arrays
        are always passed in float64, whatever dtype they are stored in.
        """
        return (
            np.ascontiguousarray(self.router_coef_, dtype=np.float64),
            int(self._fitted_params["top_k"]),
            np.ascontiguousarray(self.expert_weights_, dtype=np.float64),
            np.ascontiguousarray(self.expert_coef_, dtype=np.float64),
            np.ascontiguousarray(self.expert_intercept_, dtype=np.float64),
        )

    def predict(self, X):
        """Routed mixture of the experts' outputs.

        One fused pass per row (router scores, top-k gates, and the Hermite
        features of the routed experts only), run in parallel over row
        blocks; the result does not depend on the number of threads.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions, in the dtype of ``X``.
        """
        X = check_fitted_input(self, X)
        out = np.empty(X.shape[0])
        n_blocks, block_size = block_partition(X.shape[0])
        # Large inputs overflow the Hermite features: reported by
        # check_finite_output below, not warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            run_blocks(
                _kernels.predict_blocks, n_blocks, block_size, X,
                *self._inference_arrays(), out,
            )
            out = out.astype(X.dtype, copy=False)
        return check_finite_output(out, "predict output")

    def route(self, X):
        """Index of the top-ranked expert for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        experts : ndarray of shape (n_samples,)
            ``argmax_m theta_m^T x`` (ties: lowest index).
        """
        X = check_fitted_input(self, X)
        return np.argmax(X @ self.router_coef_.T, axis=1)

    def alignment(self, truth):
        """Overlaps of the learned neurons and router with the true structure.

        Parameters
        ----------
        truth : dict
            Ground truth from
            :func:`~skmoe.datasets.make_latent_cluster_regression` with
            ``return_truth=True``.

        Returns
        -------
        scores : dict
            ``"cluster"``: ndarray of shape (n_clusters,), max over all
            neurons of ``|w . w_c|``; ``"global"``: ndarray of shape
            (n_experts,), per expert max over its neurons of ``|w . w_g|``;
            ``"router_accuracy"``: float, fraction of fresh cluster draws
            (10,000 per cluster, fixed seed) whose top-1 expert matches their
            cluster under the best one-to-one relabelling of clusters to
            experts.

        Raises
        ------
        ValueError
            If ``truth`` is not such a dict (see :meth:`fit`).
        """
        check_is_fitted(self)
        _check_truth(truth, self.n_features_in_)
        cluster, global_ = _overlaps(self.expert_weights_, truth)
        return {
            "cluster": cluster,
            "global": global_,
            "router_accuracy": _router_accuracy(self.router_coef_, truth),
        }
