"""Mixtures of (P)ReLU MLP experts with hard Voronoi or tree routing.

The model (Kratsios, Sáez de Ocáriz Borde, Furuya and Law, "Approximation
Rates and VC-Dimension Bounds for (P)ReLU MLP Mixture of Experts", TMLR 2025)
is a set of pairs ``(p_l, f_l)``: an input ``x`` is sent to exactly one cell
``l(x)`` (the Voronoi cell of the nearest prototype ``p_l``, or the leaf of a
prototype tree) and the prediction is ``f_{l(x)}(x)``, a small MLP trained
only on the samples of that cell.

The estimator classes are thin wrappers: routing lives in
:mod:`skmoe.neural_network._routing` (its kernels in ``_routing_numba``), one
expert's training loop is the pure function
:func:`~skmoe.neural_network._mlp_training.train_expert` (run through joblib,
one call per expert), and the MLP forward/backward passes, Adam and the
grouped inference are the kernels of :mod:`skmoe.neural_network._mlp_numba`.
"""

import warnings
from numbers import Real

import numpy as np
from joblib import Parallel, delayed
from joblib._parallel_backends import MultiprocessingBackend
from joblib.parallel import get_active_backend
from scipy import special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _mlp_numba as _kernels
from . import _routing
from ._mlp_training import _LOSS_LOGISTIC, _LOSS_SOFTMAX, _LOSS_SQUARED, train_expert
from ._routing import route as _route
from ._routing_numba import group_rows
from ..utils._dask import align_row_blocks, is_dask_array, map_row_blocks
from ..utils._monitor import concatenate_histories, user_stacklevel
from ..utils._parameter_counting import check_hidden_layer_sizes
from ..utils._threading import blas_limited, run_blocks
from ..utils._validation import (
    StrictIntInterval,
    check_finite_output,
    check_fitted_input,
    check_min_samples,
    draw_seed,
    fit_context,
)


def merge_small_cells(counts, prototypes, min_samples):
    """Merge each cell with fewer than ``min_samples`` samples into its nearest cell.

    The smallest cell (ties: smallest index) is merged first into the cell
    whose prototype is nearest to its own prototype, among cells that still
    have their own expert; this repeats until every remaining group has at
    least ``min_samples`` samples or one group is left.

    Parameters
    ----------
    counts : ndarray of shape (n_cells,)
        Training samples per cell (their total sample weight in a weighted
        fit).
    prototypes : ndarray of shape (n_cells, n_features)
    min_samples : int

    Returns
    -------
    expert_of_cell : ndarray of shape (n_cells,)
        The cell whose expert serves each cell (itself if not merged).
    merges : list of (int, int)
        ``(cell, into)`` in the order performed.
    """
    n_cells = counts.shape[0]
    owner = np.arange(n_cells)
    sizes = counts.astype(np.float64)
    alive = np.ones(n_cells, dtype=bool)
    merges = []
    while alive.sum() > 1:
        candidates = np.flatnonzero(alive & (sizes < min_samples))
        if candidates.size == 0:
            break
        cell = candidates[np.argmin(sizes[candidates])]
        others = np.flatnonzero(alive & (np.arange(n_cells) != cell))
        with np.errstate(over="ignore"):  # an overflowed distance is the largest
            dist = ((prototypes[others] - prototypes[cell]) ** 2).sum(axis=1)
        into = others[np.argmin(dist)]
        merges.append((int(cell), int(into)))
        owner[owner == cell] = into
        sizes[into] += sizes[cell]
        alive[cell] = False
    return owner, merges


def _positive_weight_rows(sample_weight, X):
    """Validated ``sample_weight`` and the rows a weighted fit trains on.

    A row of zero weight takes no part in the fit, so it is dropped up front
    (the fit then equals the fit without those rows, which a weighted loss
    alone would not give: the row would still take a mini-batch slot).

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    weights : ndarray of shape (n_kept,) or None
        The positive weights as float64; None when ``sample_weight`` is None.
    keep : ndarray of shape (n_kept,) or slice
        Indices of the rows of positive weight (``slice(None)``: all rows).

    Raises
    ------
    ValueError
        If a weight is negative or not finite, or fewer than two rows have a
        positive weight.
    """
    if sample_weight is None:
        return None, slice(None)
    weights = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    keep = np.flatnonzero(weights > 0)
    if keep.size < 2:
        raise ValueError(
            f"sample_weight must give a positive weight to at least 2 samples, "
            f"got {keep.size}."
        )
    if keep.size == weights.size:
        return weights, slice(None)
    return weights[keep], keep


def _float_dtype(dtype):
    """Dtype of the float outputs for inputs of ``dtype`` (float32 stays float32)."""
    return np.dtype(dtype) if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _parallel_experts(n_jobs):
    """``Parallel`` running the experts: threads, or the user's joblib backend.

    ``prefer="threads"`` is a soft hint: a backend set with
    :func:`joblib.parallel_config` (loky, dask, ...) is used as given.  The
    one exception is ``"multiprocessing"``: when one of its worker processes
    dies (killed, out of memory, a crash in native code),
    ``multiprocessing.Pool`` waits for its result forever, so the fit would
    hang instead of raising.  That backend is replaced by threads (the
    kernels release the GIL), with a warning; results do not depend on the
    backend.
    """
    backend, _ = get_active_backend(prefer="threads")
    if isinstance(backend, MultiprocessingBackend):
        warnings.warn(
            'joblib backend "multiprocessing" is not used to train the experts: '
            "a worker process that dies would make the fit hang forever. The "
            'experts are trained in threads instead (or use backend="loky", '
            "which reports a dead worker as TerminatedWorkerError).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
        return Parallel(n_jobs=n_jobs, backend="threading")
    return Parallel(n_jobs=n_jobs, prefer="threads")


def _warn_if_experts_not_converged(name, experts, monitors):
    """One ``ConvergenceWarning`` per fit, in the monitor's text, naming every expert that did not converge."""
    failed = [e for e, monitor in zip(experts, monitors) if not monitor.converged]
    if failed:
        monitors[experts.index(failed[0])].warn_if_not_converged(
            label=f"{name}: {len(failed)} of {len(experts)} experts ({failed})",
            hint=f"The last change quoted is expert {failed[0]}'s.",
        )


def _parameter_counts(n_features, prelu, sizes, expert_of_cell, is_mlp, n_const, prototypes, tree):
    """``(n_parameters_, active_parameters_)`` of a fitted mixture."""
    n_cells = expert_of_cell.shape[0]
    served = expert_of_cell == np.arange(n_cells)
    mlp_params = int(_kernels.layer_offsets(sizes, prelu)[4])
    expert_total = int(
        (served & is_mlp).sum() * mlp_params + (served & ~is_mlp).sum() * n_const
    )
    if tree is None:
        router_total = prototypes.size
        router_active = prototypes.size
    else:
        n_nodes = tree["children"].shape[0]
        router_total = (n_nodes - 1) * n_features
        depth = int(_routing.tree_depths(tree).max())
        router_active = 2 * n_features * depth
    active_expert = mlp_params if is_mlp.any() else n_const
    return expert_total + int(router_total), int(active_expert + router_active)


# --------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------


class _BaseMixtureOfMLPs(BaseEstimator):
    """Shared fit/route/predict machinery; subclasses define the output layer."""

    _parameter_constraints: dict = {
        "n_experts": [StrictIntInterval(1, None, closed="left")],
        "routing": [StrOptions({"kmeans", "bisecting", "grid"}), "array-like"],
        "hidden_layer_sizes": ["array-like", StrictIntInterval(1, None, closed="left")],
        "activation": [StrOptions({"prelu", "relu"})],
        "alpha": [Interval(Real, 0.0, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0.0, None, closed="neither")],
        "batch_size": [StrictIntInterval(1, None, closed="left")],
        "max_iter": [StrictIntInterval(1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "n_iter_no_change": [StrictIntInterval(1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
        "min_samples_cell": [StrictIntInterval(1, None, closed="left")],
        "small_cells": [StrOptions({"merge", "constant"})],
        # joblib's convention: None, -1 (all cores), -2, ... or a positive
        # count; 0 has no meaning.
        "n_jobs": [
            StrictIntInterval(None, -1, closed="right"),
            StrictIntInterval(1, None, closed="left"),
            None,
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_experts=8,
        *,
        routing="kmeans",
        hidden_layer_sizes=(32, 32),
        activation="prelu",
        alpha=1e-4,
        learning_rate_init=1e-3,
        batch_size=64,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        min_samples_cell=10,
        small_cells="merge",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_experts = n_experts
        self.routing = routing
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.min_samples_cell = min_samples_cell
        self.small_cells = small_cells
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # -------------------------------------------------------------- routing


    def _hidden_sizes(self):
        return check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _build_router(self, X, random_state, sample_weight):
        """``(prototypes, tree or None)`` for the routing option (weighted k-means)."""
        n_samples, n_features = X.shape
        if isinstance(self.routing, str):
            if self.routing != "grid":
                check_min_samples(n_samples, self.n_experts, "n_experts")
            if self.routing == "kmeans":
                prototypes = _routing.kmeans_prototypes(
                    X, self.n_experts, random_state, sample_weight
                )
                return prototypes, None
            if self.routing == "bisecting":
                tree, prototypes = _routing.bisecting_tree(
                    X, self.n_experts, random_state, sample_weight
                )
                if prototypes.shape[0] < self.n_experts:
                    warnings.warn(
                        f"routing='bisecting' built {prototypes.shape[0]} cells instead "
                        f"of n_experts={self.n_experts}: the remaining cells could not "
                        "be split in two non-empty parts (too few distinct inputs). "
                        f"The model has n_experts_={prototypes.shape[0]} experts.",
                        UserWarning,
                    )
                return prototypes, tree
            tree, prototypes = _routing.grid_tree(X.min(axis=0), X.max(axis=0), self.n_experts)
            return prototypes, tree
        prototypes = np.asarray(self.routing)
        if (
            prototypes.ndim != 2
            or prototypes.shape[1] != n_features
            or prototypes.shape[0] < 1
            or not np.issubdtype(prototypes.dtype, np.number)
        ):
            raise ValueError(
                "routing given as an array must be prototypes of shape "
                f"(n_experts, n_features={n_features}), got shape {prototypes.shape}."
            )
        prototypes = prototypes.astype(np.float64)
        if not np.all(np.isfinite(prototypes)):
            raise ValueError("routing prototypes contain NaN or infinity.")
        return prototypes, None

    def route(self, X):
        """Index of the expert that evaluates each row.

        Each row goes to exactly one cell: the Voronoi cell of its nearest
        prototype (``routing="kmeans"`` or an array; ties to the smallest
        index) or the leaf reached by greedy nearest-child descent of the
        prototype tree (``"bisecting"``, ``"grid"``).  The returned index is
        that of the expert serving the cell, ``expert_of_cell_[cell]``, which
        is the cell itself unless the cell was merged at fit time.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Inputs.  A Dask array gives a lazy Dask array (one task per row
            block).

        Returns
        -------
        experts : ndarray or dask.array.Array of shape (n_samples,)
            Expert index in ``range(n_experts_)``.
        """
        if is_dask_array(X):
            return self._map_dask_blocks(self.route, X, None, np.int64)
        X = check_fitted_input(self, X)
        return self.expert_of_cell_[_route(X, self.prototypes_, self.routing_tree_)]

    def _map_dask_blocks(self, method, X, n_columns, dtype):
        """Lazy ``method`` (a NumPy inference method) of each row block of a Dask ``X``.

        The caller has checked that the estimator is fitted; only the shape
        is checked here, and every block is validated by
        ``method`` itself when it is computed, on the worker.  Nothing is
        computed: the result is a :class:`dask.array.Array` with ``X``'s row
        chunks, ``n_columns`` columns (1-D if None) and ``dtype``.
        """
        check_is_fitted(self)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has shape {X.shape}, but {type(self).__name__} is expecting "
                f"a 2-D array with {self.n_features_in_} features."
            )
        (X,) = align_row_blocks(X)
        return map_row_blocks(method, X, n_columns=n_columns, dtype=dtype)

    # ------------------------------------------------------------------ fit

    def _fit(self, X, Y, sample_weight, loss_kind, constant_of, is_trivial):
        """Shared fit: router, cell assignment, small cells, parallel experts.

        ``sample_weight`` is None or positive weights (rows of zero weight
        were dropped by :func:`_positive_weight_rows`): they weight the
        router's k-means, the cell sizes compared with ``min_samples_cell``
        and each expert's loss.

        ``constant_of(rows)`` gives the constant model (on the output scale of
        ``predict`` / ``predict_proba``) of a set of training rows and
        ``is_trivial(rows)`` whether those rows need no MLP (e.g. one class);
        ``rows`` may be empty.  Nothing is stored on ``self``: the fitted
        attributes are returned as a dict, for the caller to set only once
        the whole fit has succeeded.
        """
        hidden = self._hidden_sizes()
        prelu = self.activation == "prelu"
        # Routing and standardisation square the inputs: near the float64
        # limit that overflows (k-means, distances, standard deviations) and
        # the fit would silently ignore X.  One clear error instead.
        with np.errstate(over="ignore", invalid="ignore"):
            centred = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
            check_finite_output(
                np.einsum("ij,ij->i", centred, centred),
                "squared norm of the centred training inputs",
            )
        del centred
        random_state = check_random_state(self.random_state)
        prototypes, tree = self._build_router(X, random_state, sample_weight)
        # The router is stored, and the training rows routed, in X's dtype.
        prototypes = prototypes.astype(X.dtype, copy=False)
        if tree is not None:
            tree = {**tree, "centers": tree["centers"].astype(X.dtype, copy=False)}
        n_cells = prototypes.shape[0]
        seeds = [draw_seed(random_state) for _ in range(n_cells)]
        cells = _route(X, prototypes, tree)
        # Cell sizes in samples: a row of integer weight w counts w times.
        counts = np.bincount(cells, weights=sample_weight, minlength=n_cells)

        expert_of_cell = np.arange(n_cells)
        constant_cells = np.zeros(n_cells, dtype=bool)
        small = np.flatnonzero(counts < self.min_samples_cell)
        if small.size and n_cells > 1:
            if self.small_cells == "merge":
                expert_of_cell, merges = merge_small_cells(
                    counts, prototypes, self.min_samples_cell
                )
                if merges:
                    warnings.warn(
                        f"{len(merges)} cell(s) had fewer than min_samples_cell="
                        f"{self.min_samples_cell} training samples and were merged "
                        "into the nearest cell (cell -> cell whose expert serves it, "
                        "training samples): "
                        + ", ".join(
                            f"{c} -> {expert_of_cell[c]} ({counts[c]:g})" for c, _ in merges
                        )
                        + ".",
                        UserWarning,
                    )
            else:
                constant_cells[small] = True
                warnings.warn(
                    f"{small.size} cell(s) had fewer than min_samples_cell="
                    f"{self.min_samples_cell} training samples and got a constant "
                    "model (cell (training samples)): "
                    + ", ".join(f"{c} ({counts[c]:g})" for c in small)
                    + ".",
                    UserWarning,
                )
        experts = expert_of_cell[cells]
        order, offsets = group_rows(experts, n_cells)
        rows_of = [order[offsets[e] : offsets[e + 1]] for e in range(n_cells)]

        sizes = [X.shape[1], *hidden, Y.shape[1]]
        n_params = _kernels.layer_offsets(sizes, prelu)[4]
        is_mlp = np.zeros(n_cells, dtype=bool)
        constants = np.zeros((n_cells, np.size(constant_of(np.arange(0)))))
        to_train = []
        for e in range(n_cells):
            if expert_of_cell[e] != e:
                continue  # merged: served by another expert
            if constant_cells[e] or is_trivial(rows_of[e]):
                with np.errstate(over="ignore", invalid="ignore"):
                    constants[e] = constant_of(rows_of[e])
            else:
                is_mlp[e] = True
                to_train.append(e)

        options = dict(
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
        )
        name = type(self).__name__
        # The experts' kernels run on joblib's threads; the NumPy work around
        # them is per cell and small, so BLAS gets one thread (loky and Dask
        # workers are other processes, with their own limits).
        with blas_limited():
            results = _parallel_experts(self.n_jobs)(
                delayed(train_expert)(
                    X[rows_of[e]],
                    Y[rows_of[e]],
                    hidden,
                    prelu,
                    loss_kind,
                    seed=seeds[e],
                    sample_weight=None if sample_weight is None else sample_weight[rows_of[e]],
                    verbose=self.verbose,
                    label=f"{name} expert {e} (of {n_cells})",
                    **options,
                )
                for e in to_train
            )
        params = np.zeros((n_cells, n_params))
        n_iter = np.zeros(n_cells, dtype=np.int64)
        for e, (p, monitor) in zip(to_train, results):
            params[e] = p
            n_iter[e] = monitor.n_iter
        monitors = [monitor for _, monitor in results]
        _warn_if_experts_not_converged(name, to_train, monitors)

        # Fitted arrays are stored in X's dtype; float32 may overflow where
        # float64 did not.  Nothing non-finite is ever stored.
        with np.errstate(over="ignore", invalid="ignore"):
            params = params.astype(X.dtype, copy=False)
            constants = constants.astype(X.dtype, copy=False)
        check_finite_output(params, f"fitted expert_params_ (in {X.dtype})")
        check_finite_output(constants, f"fitted expert_constants_ (in {X.dtype})")

        n_parameters, active_parameters = _parameter_counts(
            X.shape[1], prelu, sizes, expert_of_cell, is_mlp, constants.shape[1], prototypes, tree
        )
        return dict(
            # The experts' layout as the kernels take it, from the activation
            # and sizes of this fit: inference reads it, never the live
            # hyper-parameters, so a set_params after fit can neither change
            # predictions nor make the kernel read slopes past expert_params_.
            _layout=(
                np.asarray(sizes, dtype=np.int64), *_kernels.layer_offsets(sizes, prelu)[:4], prelu
            ),
            prototypes_=prototypes,
            routing_tree_=tree,
            expert_of_cell_=expert_of_cell,
            n_experts_=n_cells,
            expert_params_=params,
            expert_is_mlp_=is_mlp,
            expert_constants_=constants,
            expert_n_samples_=np.bincount(experts, minlength=n_cells),
            layer_sizes_=tuple(sizes),
            experts_n_iter_=n_iter,
            history_=concatenate_histories(monitors, expert=to_train),
            # 1 when every expert is constant (no MLP trained): scikit-learn's
            # estimator checks expect n_iter_ >= 1 after any fit.
            n_iter_=int(max(1, n_iter.max(initial=0))),
            n_parameters_=n_parameters,
            active_parameters_=active_parameters,
        )

    def _set_fitted(self, attributes):
        """Set all fitted attributes at once, at the end of a successful fit."""
        for name, value in attributes.items():
            setattr(self, name, value)
        return self

    # -------------------------------------------------------------- predict

    def _raw_outputs(self, X):
        """Rows' outputs of their own expert; ``(raw, experts)``.

        Rows are grouped by expert (counting sort) and each MLP expert is
        evaluated on its own rows only; constant experts' rows are filled
        from ``expert_constants_``.
        """
        experts = self.expert_of_cell_[_route(X, self.prototypes_, self.routing_tree_)]
        order, offsets = group_rows(experts, self.n_experts_)
        out = np.zeros((X.shape[0], self.layer_sizes_[-1]), np.result_type(X, self.expert_params_))
        run_blocks(
            _kernels.predict_grouped_blocks, self.n_experts_, X, order, offsets,
            self.expert_params_, self.expert_is_mlp_, *self._layout, out,
        )
        return out, experts

    def vc_dimension_bound(self):
        """Core of the VC-dimension bound ``L * max(n L, J W)``.

        Kratsios et al. (TMLR 2025) bound the VC dimension of a MoMLP with
        ``L`` experts on ``n`` inputs, each a (P)ReLU MLP of depth ``J`` and
        width ``W``, by :math:`\\tilde O(L \\max\\{nL, JW\\})`.  The
        :math:`\\tilde O` hides constants and logarithmic factors whose exact
        form is not known to us (the paper's statement of them could not be
        checked), so the returned number is the *order* of the bound, not a
        bound itself.  ``n L`` counts the prototype coordinates and ``J W``
        the per-expert complexity; ``W`` is the largest hidden width.

        Returns
        -------
        bound : int
            ``n_experts_ * max(n_features_in_ * n_experts_, J * W)``.
        """
        check_is_fitted(self)
        hidden = self.layer_sizes_[1:-1]
        L = self.n_experts_
        return int(L * max(self.n_features_in_ * L, len(hidden) * max(hidden)))


_SHARED_PARAMETERS_DOC = """
    n_experts : int, default=8
        Number of cells (and experts) ``L``.  Ignored when ``routing`` is an
        array of prototypes; must be a power of 2 for ``routing="grid"``.

    routing : {"kmeans", "bisecting", "grid"} or array-like of shape \
            (n_experts, n_features), default="kmeans"
        How inputs are sent to experts (always to exactly one):

        - ``"kmeans"``: flat Voronoi routing; the prototypes are the k-means
          centres of the training inputs and a row goes to its nearest
          prototype (ties to the smallest index), ``L`` distances per row.
        - ``"bisecting"``: a binary tree of centres built by recursive 2-means
          (bisecting k-means); a row descends to the nearer child at each
          node, ``O(log L)`` distances per row.  This can differ from the flat
          nearest-leaf rule near cell boundaries.  With too few distinct
          inputs fewer than ``n_experts`` cells are built (with a warning).
        - ``"grid"``: dyadic cells of the training bounding box, halved at
          midpoints cycling through the features (the theory's construction;
          cubes when the bounding box is a cube and ``log2(L)`` is a multiple
          of ``n_features``), routed by tree descent, which here equals the
          flat nearest-centre rule.
        - an array: user prototypes, flat Voronoi routing.

    hidden_layer_sizes : array-like of int or int, default=(32, 32)
        Hidden widths of each expert (``J`` layers).

    activation : {"prelu", "relu"}, default="prelu"
        Hidden activation.  ``"prelu"`` is ``max(z, a z)`` with one learnable
        slope ``a`` per hidden unit, kept in ``[0, 0.999]`` (initialised at
        0.25); ``"relu"`` fixes ``a = 0``.

    alpha : float, default=1e-4
        L2 penalty on the weights (not on biases or slopes), as in
        scikit-learn's MLPs.

    learning_rate_init : float, default=1e-3
        Adam step size.

    batch_size : int, default=64
        Mini-batch size (capped at each cell's number of samples).

    max_iter : int, default=200
        Maximum number of epochs per expert.

    tol : float, default=1e-4
        Training of an expert stops when its loss has not improved by ``tol``
        for ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        See ``tol``.

    early_stopping : bool, default=False
        If True, each expert holds out ``round(validation_fraction * n)`` of
        the ``n`` samples of its cell, stops on the validation loss and keeps
        the weights of its best epoch.  Cells with fewer than
        ``2 / validation_fraction`` samples, or that would keep fewer than 2
        samples to train on, hold nothing out and stop on the training loss.

    validation_fraction : float, default=0.1
        Share of a cell held out with ``early_stopping``.

    min_samples_cell : int, default=10
        Cells with fewer training samples are handled by ``small_cells``.

    small_cells : {"merge", "constant"}, default="merge"
        ``"merge"``: a small cell keeps its prototype (routing is unchanged)
        but is served by the expert of the cell with the nearest prototype,
        which also trains on its samples; ``"constant"``: it gets a constant
        model (the mean of its training targets, or of all targets if it is
        empty).  Either way a warning names the cells.

    n_jobs : int, default=None
        Experts trained in parallel by :class:`joblib.Parallel` (threads by
        default: the kernels release the GIL).  Any joblib backend can be
        used, e.g. ``joblib.parallel_config(backend="dask")`` to spread the
        experts over a Dask cluster.  Results do not depend on ``n_jobs`` or
        on the backend.  The ``"multiprocessing"`` backend is replaced by
        threads, with a warning: a worker process that dies would make the
        fit hang forever.

    random_state : int, RandomState instance or None, default=None
        Seeds the router (k-means) and, through one draw per expert, each
        expert's initialisation and mini-batch shuffles.

    verbose : int, default=0
        Progress of each expert's training, in the one line format of
        skmoe's convergence monitor (epoch, loss, change, elapsed time and
        an upper bound on the time left), labelled
        ``"<estimator> expert <e> (of <n_experts_>)"`` with ``e`` the expert's
        index in ``range(n_experts_)``: 0 prints nothing, 1 a line every
        tenth epoch, 2 or more a line every epoch; every expert also prints
        a closing line.  With ``n_jobs > 1`` the lines of experts trained at
        the same time interleave.
"""

_SHARED_ATTRIBUTES_DOC = """
    prototypes_ : ndarray of shape (`n_experts_`, n_features)
        Prototype of each cell (leaf centres for tree routing).  Like every
        fitted array of floats (``routing_tree_["centers"]``,
        ``expert_params_``, ``expert_constants_``), in the dtype of the
        training inputs, float32 or float64: the experts are trained in
        float64, then stored in that dtype, and predictions on inputs of the
        same dtype are computed in it.

    routing_tree_ : dict or None
        For tree routing, the arrays ``"centers"`` (n_nodes, n_features),
        ``"children"`` (n_nodes, 2; ``-1`` at leaves, node 0 is the root) and
        ``"leaf"`` (cell index of each leaf node, ``-1`` elsewhere); None for
        flat routing.

    expert_of_cell_ : ndarray of shape (`n_experts_`,)
        Index of the expert serving each cell (itself unless merged).

    n_experts_ : int
        Number of cells.

    expert_params_ : ndarray of shape (`n_experts_`, n_expert_parameters)
        Flat parameter vector of each MLP expert, on raw inputs and outputs:
        for each layer its weights ``(n_out, n_in)`` row-major then its
        biases, then the PReLU slopes of each hidden layer.  Rows of merged
        or constant experts are zero.

    expert_is_mlp_ : ndarray of shape (`n_experts_`,), dtype bool
        Whether each expert is a trained MLP.

    expert_n_samples_ : ndarray of shape (`n_experts_`,)
        Training rows of each expert (rows of positive ``sample_weight``;
        zero for merged cells).

    layer_sizes_ : tuple of int
        ``(n_features, *hidden_layer_sizes, n_outputs)`` of each expert.

    experts_n_iter_ : ndarray of shape (`n_experts_`,)
        Epochs run by each expert (0 if not an MLP).

    history_ : dict of ndarray
        The trained experts' epochs as recorded by their convergence
        monitors, expert after expert, in the format of every skmoe
        ``history_``: equal-length arrays ``"iteration"`` (epoch, from 1 for
        each expert), ``"objective"`` (the epoch's mean training loss, or the
        validation loss with ``early_stopping``), ``"change"`` (difference
        with the previous epoch of the same expert, NaN at its first),
        ``"elapsed"`` (seconds since that expert's training started) and
        ``"expert"`` (the expert's index).  Constant experts have no rows.

    n_iter_ : int
        Largest number of epochs run by an expert; 1 when no MLP was trained
        (every expert constant), so it is always at least 1.

    n_parameters_ : int
        Total parameters: every served expert (an MLP's weights, biases and
        slopes, or a constant's outputs) plus the router (all prototype
        coordinates; for a tree, the centres of every non-root node).

    active_parameters_ : int
        Parameters loaded to predict one input: one MLP expert plus the
        routing path, i.e. ``n_experts_ * n_features`` prototype coordinates
        for flat routing and ``2 * n_features * depth`` for tree routing
        (``depth`` the largest leaf depth; ``log2(n_experts)`` for a grid).

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, if ``X`` had string column names.
"""


class MixtureOfMLPsRegressor(RegressorMixin, _BaseMixtureOfMLPs):
    """Mixture of (P)ReLU MLP experts with hard Voronoi or tree routing.

    Each input is routed to exactly one of ``L`` cells and predicted by that
    cell's MLP expert, which was trained (by mini-batch Adam, squared error)
    only on the training samples of its cell, so experts train independently
    and in parallel, and prediction evaluates one expert per row
    (Kratsios et al., TMLR 2025).  On a Lipschitz target, more experts of a
    fixed size give a smaller sup-norm error while the parameters touched per
    input (``active_parameters_``) stay fixed.

    Read more in the :ref:`User Guide <momlp>`.

    Parameters
    ----------
    {parameters}
    Attributes
    ----------
    expert_constants_ : ndarray of shape (`n_experts_`, n_outputs)
        Output of each constant expert (zero for MLP experts).

    n_outputs_ : int
        Number of outputs.
    {attributes}
    See Also
    --------
    MixtureOfMLPsClassifier : The classification counterpart.
    sklearn.neural_network.MLPRegressor : One dense MLP for all inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfMLPsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(size=(2000, 2))
    >>> y = np.abs(X[:, 0] - 0.5) + np.sin(3 * X[:, 1])
    >>> model = MixtureOfMLPsRegressor(n_experts=4, routing="grid",
    ...                                hidden_layer_sizes=(16,),
    ...                                random_state=0).fit(X, y)
    >>> model.route(np.array([[0.1, 0.1], [0.9, 0.9]]))
    array([0, 3])
    >>> round(model.score(X, y), 2) > 0.95
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Build the router and train one MLP expert per cell.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: the k-means prototypes are weighted
            centroids, a cell's size (compared with ``min_samples_cell``) is
            its total weight, and each expert minimises the weighted mean
            squared error of its cell (weighted standardisation too).  Rows
            of zero weight are dropped.  None means unit weights.

        Returns
        -------
        self : MixtureOfMLPsRegressor
            Fitted estimator.
        """
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=True,
            dtype=[np.float64, np.float32],
            order="C",
            ensure_min_samples=2,
        )
        Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
        weights, keep = _positive_weight_rows(sample_weight, X)
        X, Y = X[keep], Y[keep]
        with np.errstate(over="ignore", invalid="ignore"):
            # checked with the constants, if used
            global_mean = np.average(Y, axis=0, weights=weights)

        def constant_of(rows):
            if rows.size == 0:
                return global_mean
            return np.average(Y[rows], axis=0, weights=None if weights is None else weights[rows])

        def is_trivial(rows):
            return rows.size == 0

        attributes = self._fit(X, Y, weights, _LOSS_SQUARED, constant_of, is_trivial)
        attributes.update(n_outputs_=Y.shape[1], _y_ndim=np.ndim(y))
        return self._set_fitted(attributes)

    def predict(self, X):
        """Predict with the one expert each row is routed to.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Inputs.  A Dask array gives a lazy Dask array (one task per row
            block, each evaluated by the NumPy path on its worker).

        Returns
        -------
        y : ndarray or dask.array.Array of shape (n_samples,) or \
                (n_samples, n_outputs)
            Predictions, in the dtype of ``X``.
        """
        if is_dask_array(X):
            check_is_fitted(self)
            n_columns = None if self._y_ndim == 1 else self.n_outputs_
            return self._map_dask_blocks(self.predict, X, n_columns, _float_dtype(X.dtype))
        X = check_fitted_input(self, X)
        out, experts = self._raw_outputs(X)
        constant = ~self.expert_is_mlp_[experts]
        if constant.any():
            out[constant] = self.expert_constants_[experts[constant]]
        with np.errstate(over="ignore", invalid="ignore"):
            out = out.astype(X.dtype, copy=False)
        check_finite_output(out, "predict output")
        return out[:, 0] if self._y_ndim == 1 else out


class MixtureOfMLPsClassifier(ClassifierMixin, _BaseMixtureOfMLPs):
    """Mixture of (P)ReLU MLP classifiers with hard Voronoi or tree routing.

    Each input is routed to exactly one of ``L`` cells and classified by that
    cell's MLP expert, trained by mini-batch Adam on the cross-entropy of a
    softmax output (a single logistic output for two classes) using only the
    training samples of its cell.  A cell whose samples all have the same
    class gets a constant model (that class with probability one).

    Read more in the :ref:`User Guide <momlp>`.

    Parameters
    ----------
    {parameters}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    expert_constants_ : ndarray of shape (`n_experts_`, n_classes)
        Class probabilities of each constant expert (zero for MLP experts).
    {attributes}
    See Also
    --------
    MixtureOfMLPsRegressor : The regression counterpart.
    sklearn.neural_network.MLPClassifier : One dense MLP for all inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfMLPsClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(1000, 2))
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> clf = MixtureOfMLPsClassifier(n_experts=4, hidden_layer_sizes=(8,),
    ...                               random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).sum(axis=1)
    array([1., 1., 1.])
    >>> clf.score(X, y) > 0.95
    True
    """

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Build the router and train one MLP classifier per cell.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: the k-means prototypes are weighted
            centroids, a cell's size (compared with ``min_samples_cell``) is
            its total weight, each expert minimises the weighted mean
            cross-entropy of its cell and a constant expert predicts the
            weighted class frequencies.  Rows of zero weight are dropped
            (``classes_`` still lists every label of ``y``).  None means
            unit weights.

        Returns
        -------
        self : MixtureOfMLPsClassifier
            Fitted estimator.
        """
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], order="C", ensure_min_samples=2
        )
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        weights, keep = _positive_weight_rows(sample_weight, X)
        X, encoded = X[keep], encoded[keep]
        n_classes = len(classes)
        if n_classes <= 2:
            Y = encoded.astype(np.float64).reshape(-1, 1)
            loss_kind = _LOSS_LOGISTIC
        else:
            Y = np.zeros((X.shape[0], n_classes))
            Y[np.arange(X.shape[0]), encoded] = 1.0
            loss_kind = _LOSS_SOFTMAX

        def frequencies(rows):
            w = None if weights is None else weights[rows]
            counts = np.bincount(encoded[rows], weights=w, minlength=n_classes)
            return counts / counts.sum()

        global_freq = frequencies(np.arange(X.shape[0]))

        def constant_of(rows):
            return frequencies(rows) if rows.size else global_freq

        def is_trivial(rows):
            """True when the rows hold at most one class."""
            return rows.size == 0 or np.unique(encoded[rows]).size <= 1

        attributes = self._fit(X, Y, weights, loss_kind, constant_of, is_trivial)
        attributes.update(classes_=classes)
        return self._set_fitted(attributes)

    def predict_proba(self, X):
        """Class probabilities from the one expert each row is routed to.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Inputs.  A Dask array gives a lazy Dask array (one task per row
            block).

        Returns
        -------
        proba : ndarray or dask.array.Array of shape (n_samples, n_classes)
            Rows sum to one; columns follow ``classes_``.
        """
        if is_dask_array(X):
            check_is_fitted(self)
            return self._map_dask_blocks(
                self.predict_proba, X, len(self.classes_), _float_dtype(X.dtype)
            )
        X = check_fitted_input(self, X)
        raw, experts = self._raw_outputs(X)
        n_classes = len(self.classes_)
        # Infinite logits (inputs near the float limit) would give NaN
        # probabilities: reported by check_finite_output, not warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            if n_classes == 1:
                proba = np.ones((X.shape[0], 1))
            elif raw.shape[1] == 1:
                p1 = special.expit(raw[:, 0])
                proba = np.column_stack([1.0 - p1, p1])
            else:
                proba = special.softmax(raw, axis=1)
        constant = ~self.expert_is_mlp_[experts]
        if constant.any():
            proba[constant] = self.expert_constants_[experts[constant]]
        check_finite_output(proba, "predict_proba output")
        return proba.astype(X.dtype, copy=False)

    def predict(self, X):
        """Most probable class under the row's expert.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Inputs.  A Dask array gives a lazy Dask array (one task per row
            block).

        Returns
        -------
        y : ndarray or dask.array.Array of shape (n_samples,)
            Predicted labels.
        """
        if is_dask_array(X):
            check_is_fitted(self)
            return self._map_dask_blocks(self.predict, X, None, self.classes_.dtype)
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


_PARAMETERS_BLOCK = _SHARED_PARAMETERS_DOC.lstrip("\n") + "\n"
for _cls in (MixtureOfMLPsRegressor, MixtureOfMLPsClassifier):
    _cls.__doc__ = _cls.__doc__.replace("    {parameters}\n", _PARAMETERS_BLOCK)
    _cls.__doc__ = _cls.__doc__.replace("    {attributes}\n", _SHARED_ATTRIBUTES_DOC + "\n")
del _cls
