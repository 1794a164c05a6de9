"""Sampler for sequence multi-index models."""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, validate_params

from ..utils._validation import StrictIntInterval, check_finite_output


@validate_params(
    {
        "n_samples": [StrictIntInterval(1, None, closed="left")],
        "n_features": [StrictIntInterval(1, None, closed="left")],
        "channel": [HasMethods(["sample", "posterior"])],
        "n_directions": [StrictIntInterval(1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_sequence_multi_index(n_samples, n_features, channel, *, n_directions=None,
                              random_state=None):
    """Sample data from a sequence multi-index model.

    ``X_mu`` has i.i.d. standard normal entries, the rows of ``W*`` are
    i.i.d. ``N(0, I_p)``, and ``y_mu ~ P_out(. | X_mu W* / sqrt(d))``.

    Parameters
    ----------
    n_samples : int
        Number of sequences ``n``.
    n_features : int
        Token dimension ``d``.
    channel : channel object
        Output channel from :mod:`skmoe.amp`; fixes the number of tokens
        ``L`` and of directions ``p``.
    n_directions : int, default=None
        Number of directions; must equal ``channel.n_directions`` if given.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_tokens, n_features)
        Input sequences.
    y : ndarray of shape (n_samples,) + channel.y_trailing_shape
        Targets.
    W_star : ndarray of shape (n_features, n_directions)
        Ground-truth weights.

    Examples
    --------
    >>> from skmoe.amp import DeepAttentionChannel
    >>> from skmoe.datasets import make_sequence_multi_index
    >>> X, y, W = make_sequence_multi_index(10, 50, DeepAttentionChannel(),
    ...                                     random_state=0)
    >>> X.shape, y.shape, W.shape
    ((10, 2, 50), (10, 2, 2), (50, 2))
    """
    if isinstance(channel, type):
        raise ValueError(
            f"channel must be a channel instance, e.g. {channel.__name__}(), got the "
            f"class {channel.__name__} itself."
        )
    p = channel.n_directions
    if n_directions is not None and n_directions != p:
        raise ValueError(f"n_directions={n_directions} does not match the channel "
                         f"({channel!r} has n_directions={p}).")
    rng = check_random_state(random_state)
    W_star = rng.standard_normal((n_features, p))
    X = rng.standard_normal((n_samples, channel.n_tokens, n_features))
    Z = np.einsum("nld,dp->nlp", X, W_star) / np.sqrt(n_features)
    y = check_finite_output(channel.sample(Z, random_state=rng), "sampled target y",
                            hint=f"Check the channel {channel!r}: its sample() gave "
                                 "NaN or infinity.")
    return X, y, W_star
