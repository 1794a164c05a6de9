"""Parameter accounting for MLP experts and same-budget baselines."""

import math
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import validate_params

from ._validation import StrictIntInterval

def check_hidden_layer_sizes(hidden_layer_sizes):
    """``hidden_layer_sizes`` (an int or a flat sequence of ints >= 1) as a tuple.

    Booleans, floats, nested sequences and empty sequences are rejected with
    a ValueError.
    """
    sizes = hidden_layer_sizes
    if isinstance(sizes, np.ndarray):
        sizes = sizes.tolist()  # NumPy integers become ints, nested arrays lists
    if isinstance(sizes, Integral):
        sizes = (sizes,)
    try:
        sizes = None if isinstance(sizes, str) else tuple(sizes)
    except TypeError:
        sizes = None
    if not sizes or any(
        not isinstance(s, Integral) or isinstance(s, (bool, np.bool_)) or s < 1 for s in sizes
    ):
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a non-empty sequence of "
            f"positive ints, got {hidden_layer_sizes!r}."
        )
    return tuple(int(s) for s in sizes)


# Largest parameter count whose parameter vector can be indexed (int64 offsets).
_MAX_N_PARAMETERS = int(np.iinfo(np.int64).max)


def _expert_n_parameters(n_features, hidden_layer_sizes, n_outputs, prelu):
    """:func:`expert_n_parameters` without validation (exact Python ints)."""
    sizes = [int(n_features), *(int(s) for s in hidden_layer_sizes), int(n_outputs)]
    count = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
    return count + (sum(sizes[1:-1]) if prelu else 0)


@validate_params(
    {
        "n_features": [StrictIntInterval(1, None, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "n_outputs": [StrictIntInterval(1, None, closed="left")],
        "prelu": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def expert_n_parameters(n_features, hidden_layer_sizes, n_outputs, prelu):
    """Number of parameters of one MLP expert.

    For ``J`` hidden layers of width ``W``, input dimension ``n`` and a scalar
    output this is ``(n + 1) W + (J - 1)(W^2 + W) + W + 1`` (the formula of
    Kratsios et al.), plus ``J W`` learnable slopes for PReLU.

    Parameters
    ----------
    n_features : int
        Input dimension, at least 1.
    hidden_layer_sizes : sequence of int
        Widths of the hidden layers: one or more positive integers.
    n_outputs : int
        Output dimension, at least 1.
    prelu : bool
        Whether every hidden unit has a learnable PReLU slope.

    Returns
    -------
    n_parameters : int
        Weights, biases and (for PReLU) slopes.

    Raises
    ------
    ValueError
        If an argument is not of the documented type or not positive.

    Examples
    --------
    >>> from skmoe.utils import expert_n_parameters
    >>> expert_n_parameters(2, (8,), 1, prelu=False)  # (2 + 1) 8 + 8 + 1
    33
    """
    hidden = check_hidden_layer_sizes(hidden_layer_sizes)
    return _expert_n_parameters(n_features, hidden, n_outputs, prelu)


@validate_params(
    {
        "n_parameters": [StrictIntInterval(1, _MAX_N_PARAMETERS, closed="both")],
        "n_features": [StrictIntInterval(1, None, closed="left")],
        "n_hidden_layers": [StrictIntInterval(1, None, closed="left")],
        "n_outputs": [StrictIntInterval(1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def mlp_width_for_n_parameters(n_parameters, n_features, n_hidden_layers=2, n_outputs=1):
    """Common hidden width of a ReLU MLP with about ``n_parameters`` parameters.

    The MLP is a scikit-learn :class:`~sklearn.neural_network.MLPRegressor`
    (or a ReLU expert) with ``n_hidden_layers`` hidden layers of the same
    width ``W``; its count is :func:`expert_n_parameters` with
    ``prelu=False``.  Used to build "same total parameters" baselines.

    Parameters
    ----------
    n_parameters : int
        Target number of weights and biases, between 1 and ``2**63 - 1``.
    n_features : int
        Input dimension, at least 1.
    n_hidden_layers : int, default=2
        Number of hidden layers, all of width ``W``; at least 1.
    n_outputs : int, default=1
        Output dimension, at least 1.

    Returns
    -------
    width : int
        The width ``W >= 1`` whose parameter count is nearest to
        ``n_parameters`` (ties to the smaller width).

    Raises
    ------
    ValueError
        If an argument is not an integer in its documented range.

    Examples
    --------
    >>> from skmoe.utils import expert_n_parameters, mlp_width_for_n_parameters
    >>> width = mlp_width_for_n_parameters(1000, n_features=2)
    >>> width, expert_n_parameters(2, (width, width), 1, prelu=False)
    (29, 987)
    """
    J = int(n_hidden_layers)
    n_features, n_outputs, n_parameters = int(n_features), int(n_outputs), int(n_parameters)
    # count(W) = (J - 1) W^2 + (n_features + J + n_outputs) W + n_outputs
    a = J - 1
    b = n_features + J + n_outputs
    c = n_outputs - n_parameters
    # Floor of the positive root, in exact integer arithmetic (the
    # discriminant is positive: b^2 >= 4 J n_outputs > -4 a c).
    if a == 0:
        low = -c // b
    else:
        low = (math.isqrt(b * b - 4 * a * c) - b) // (2 * a)
    low = max(1, low)
    candidates = (low, low + 1)
    gaps = [
        abs(_expert_n_parameters(n_features, (w,) * J, n_outputs, False) - n_parameters)
        for w in candidates
    ]
    return candidates[int(np.argmin(gaps))]
