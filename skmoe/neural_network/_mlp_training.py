"""Training of one MLP expert: initialisation, mini-batch Adam epochs, scalings.

:func:`train_expert` is a pure function of its inputs and seed (one call per
expert, run through joblib by :mod:`skmoe.neural_network._mixture_of_mlps`);
the compiled forward/backward passes and Adam steps are in
:mod:`skmoe.neural_network._mlp_numba`.
"""

import numpy as np

from . import _mlp_numba as _kernels
from ..utils._monitor import ConvergenceMonitor
from ..utils._validation import check_finite_output

# Adam constants (scikit-learn's defaults).
_BETA1 = 0.9
_BETA2 = 0.999
_EPSILON = 1e-8

# Initial PReLU slope (PyTorch's default).
_INITIAL_SLOPE = 0.25

_LOSS_SQUARED, _LOSS_LOGISTIC, _LOSS_SOFTMAX = 0, 1, 2


def init_expert_params(sizes, prelu, random_state):
    """Glorot-uniform weights and biases (as scikit-learn's MLPs), slopes 0.25.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_in, h_1, ..., h_J, n_out)``.
    prelu : bool
    random_state : RandomState

    Returns
    -------
    params : ndarray of shape (n_parameters,)
    """
    w_off, b_off, s_off, _, n_params = _kernels.layer_offsets(sizes, prelu)
    params = np.empty(n_params)
    for layer in range(len(sizes) - 1):
        fan_in, fan_out = sizes[layer], sizes[layer + 1]
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        n_w = fan_in * fan_out
        params[w_off[layer] : w_off[layer] + n_w] = random_state.uniform(-bound, bound, n_w)
        params[b_off[layer] : b_off[layer] + fan_out] = random_state.uniform(
            -bound, bound, fan_out
        )
    params[s_off[0] : s_off[-1]] = _INITIAL_SLOPE
    return params


def fold_scaling(params, sizes, prelu, x_mean, x_scale, y_mean, y_scale):
    """Fold input standardisation and output de-standardisation into the weights.

    The network trained on ``(x - x_mean) / x_scale`` with targets
    ``(y - y_mean) / y_scale`` becomes a network on raw ``x`` predicting raw
    ``y``: the first layer absorbs the input affine map and the last layer
    the output one.  The architecture (and parameter count) is unchanged.

    Parameters
    ----------
    params : ndarray of shape (n_parameters,)
    sizes : sequence of int
    prelu : bool
    x_mean, x_scale : ndarray of shape (n_in,)
    y_mean, y_scale : ndarray of shape (n_out,)

    Returns
    -------
    params : ndarray of shape (n_parameters,)
        A new array.
    """
    w_off, b_off, _, _, _ = _kernels.layer_offsets(sizes, prelu)
    params = params.copy()
    n_in, h1 = sizes[0], sizes[1]
    W = params[w_off[0] : w_off[0] + n_in * h1].reshape(h1, n_in)
    W /= x_scale
    params[b_off[0] : b_off[0] + h1] -= W @ x_mean
    last = len(sizes) - 2
    h_last, n_out = sizes[-2], sizes[-1]
    W = params[w_off[last] : w_off[last] + h_last * n_out].reshape(n_out, h_last)
    W *= y_scale[:, None]
    b = params[b_off[last] : b_off[last] + n_out]
    b *= y_scale
    b += y_mean
    return params


def _weighted_mean_and_scale(values, weights):
    """Weighted column means and standard deviations, zeros replaced by one.

    A row of integer weight ``w`` counts as ``w`` repeated rows.  Constant
    columns get a scale of one (nothing to standardise).
    """
    mean = np.average(values, axis=0, weights=weights)
    scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=weights))
    scale[scale <= 1e-12 * np.maximum(1.0, np.abs(values).max(axis=0))] = 1.0
    return mean, scale


def train_expert(
    X,
    Y,
    hidden_layer_sizes,
    prelu,
    loss_kind,
    *,
    alpha,
    learning_rate_init,
    batch_size,
    max_iter,
    tol,
    n_iter_no_change,
    early_stopping,
    validation_fraction,
    seed,
    sample_weight=None,
    verbose=0,
    label="expert",
):
    """Train one MLP expert by mini-batch Adam on its cell's samples.

    Inputs are standardised (per feature, over the cell, weighted by
    ``sample_weight``), and so are the targets of a regression; the scalings are folded into the returned
    weights (:func:`fold_scaling`).  The stopping rule is scikit-learn's:
    training stops when the training loss (or the validation loss with
    ``early_stopping``, keeping the weights of the best epoch) has not
    improved by ``tol`` for more than ``n_iter_no_change`` consecutive epochs
    (the ``"no_improvement"`` rule of
    :class:`~skmoe.utils._monitor.ConvergenceMonitor`, which receives one
    report per epoch).  With ``early_stopping`` the cell holds out
    :func:`n_validation_samples` ``(n_samples, validation_fraction)`` samples
    (none for small cells).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        Targets; one-hot for the softmax loss, 0/1 for the logistic loss.
    hidden_layer_sizes : tuple of int
    prelu : bool
    loss_kind : {0, 1, 2}
        Squared error, logistic or softmax cross-entropy.
    alpha, learning_rate_init : float
    batch_size, max_iter, n_iter_no_change : int
    tol, validation_fraction : float
    early_stopping : bool
    seed : int
        Seeds the initialisation, the validation split and the shuffles.
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Positive weights of the rows: every batch loss (and the epoch and
        validation losses) is the weighted mean of the rows' losses, and the
        standardisations are weighted, so an integer weight acts as repeated
        rows within a batch.  None means unit weights.
    verbose : int, default=0
        Progress lines of the monitor: none (0), every tenth epoch (1) or
        every epoch (2 or more), and one when training ends.
    label : str, default="expert"
        Names the expert in progress lines and in the warning.

    Returns
    -------
    params : ndarray of shape (n_parameters,)
    monitor : ConvergenceMonitor
        The finished monitor (no warning emitted): ``n_iter`` epochs run,
        ``converged`` whether the stopping rule fired, ``history`` the loss
        of every epoch.
    """
    random_state = np.random.RandomState(seed)
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if sample_weight is None:
        weights = np.ones(X.shape[0])
    else:
        weights = np.ascontiguousarray(sample_weight, dtype=np.float64)
    sizes = [X.shape[1], *hidden_layer_sizes, Y.shape[1]]
    # The network's layout, as the kernels take it.
    layout = (np.asarray(sizes, dtype=np.int64), *_kernels.layer_offsets(sizes, prelu)[:4], prelu)
    params = init_expert_params(sizes, prelu, random_state)

    # Inputs or targets near the float64 limit overflow in the scalings
    # (squares in the standard deviation) or in the folded weights: that is
    # reported by one clear error (check_finite_output), not warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        x_mean, x_scale = _weighted_mean_and_scale(X, weights)
        check_finite_output(
            np.concatenate([x_mean, x_scale]), f"standardisation of {label}'s inputs"
        )
        Xs = np.ascontiguousarray((X - x_mean) / x_scale)
        if loss_kind == _LOSS_SQUARED:
            y_mean, y_scale = _weighted_mean_and_scale(Y, weights)
            check_finite_output(
                np.concatenate([y_mean, y_scale]), f"standardisation of {label}'s targets"
            )
            Ys = np.ascontiguousarray((Y - y_mean) / y_scale)
        else:
            y_mean = np.zeros(Y.shape[1])
            y_scale = np.ones(Y.shape[1])
            Ys = np.ascontiguousarray(Y)

    n = X.shape[0]
    n_val = n_validation_samples(n, validation_fraction) if early_stopping else 0
    if n_val:
        split = random_state.permutation(n)
        X_val, Y_val, w_val = Xs[split[:n_val]], Ys[split[:n_val]], weights[split[:n_val]]
        Xs, Ys, weights = Xs[split[n_val:]], Ys[split[n_val:]], weights[split[n_val:]]
    n_train = Xs.shape[0]

    m = np.zeros_like(params)
    v = np.zeros_like(params)
    t = 0
    best = np.inf
    best_params = params
    monitor = ConvergenceMonitor(
        tol=tol,
        max_iter=max_iter,
        rule="no_improvement",
        n_iter_no_change=n_iter_no_change,
        verbose=verbose,
        label=label,
        objective_name="validation loss" if n_val else "loss",
    )
    for _ in range(max_iter):
        perm = random_state.permutation(n_train)
        loss, t = _kernels.train_epoch(
            params, m, v, t, Xs, Ys, weights, perm, batch_size, *layout, loss_kind, alpha,
            learning_rate_init, _BETA1, _BETA2, _EPSILON,
        )
        if n_val:
            loss = _kernels.mean_loss(params, X_val, Y_val, w_val, *layout, loss_kind, 0.0)[0]
        if not np.isfinite(loss):
            raise ValueError(
                "Training an expert diverged (non-finite loss); try a smaller "
                "learning_rate_init."
            )
        if n_val and loss < best:
            best = loss
            best_params = params.copy()
        if monitor.report(loss):
            break
    monitor.finish(warn=False)
    if n_val:
        params = best_params
    with np.errstate(over="ignore", invalid="ignore"):
        params = fold_scaling(params, sizes, prelu, x_mean, x_scale, y_mean, y_scale)
    check_finite_output(
        params, f"parameter vector of {label} (on raw inputs and outputs, after folding "
        "the standardisations into the weights)"
    )
    return params, monitor


def n_validation_samples(n_samples, validation_fraction):
    """Samples a cell of ``n_samples`` holds out for early stopping.

    ``round(validation_fraction * n_samples)``, provided the cell has at
    least ``2 / validation_fraction`` samples (so that at least two are held
    out) and at least two samples remain to train on; otherwise zero (the
    cell stops on its training loss).

    Parameters
    ----------
    n_samples : int
    validation_fraction : float
        In ``(0, 1)``.

    Returns
    -------
    n_val : int
    """
    if n_samples < 2.0 / validation_fraction:
        return 0
    n_val = int(round(validation_fraction * n_samples))
    if n_val < 2 or n_samples - n_val < 2:
        return 0
    return n_val
