"""Bayes-optimal GAMP for sequence multi-index models (matrix form)."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Hidden, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils._array_api import (
    array_api_namespace,
    check_same_namespace,
    device,
    from_numpy,
    move_like,
    namespace_or_numpy,
    standard_normal_like,
    supported_float_dtypes,
    to_numpy,
)
from ..utils._monitor import ConvergenceMonitor
from ..utils._validation import (
    StrictIntInterval,
    check_int,
    fit_context,
    snapshot_params,
    warn_deprecated_param,
)
from ._state_evolution import _sym_sqrt, spectral_map

__all__ = ["SequenceMultiIndexAMP"]


def _sym_psd_clip(A, floor=0.0):
    """Symmetrise ``A`` and clip its eigenvalues below at ``floor``."""
    return spectral_map(A, lambda w: np.maximum(w, floor))


def _check_ground_truth(W_star, shape):
    """``W_star`` as a finite float64 host array of the given shape."""
    W_star = to_numpy(W_star, dtype=np.float64)
    if W_star.shape != tuple(shape):
        raise ValueError(f"W_star must have shape {tuple(shape)}, got {W_star.shape}.")
    if not np.all(np.isfinite(W_star)):
        raise ValueError("W_star contains NaN or infinity.")
    return W_star


def _output_denoiser(channel, y, Omega, V, on_device):
    """Posterior mean of ``Z`` and the summed token-diagonal posterior covariance.

    Parameters
    ----------
    channel : channel object
    y : array
        Targets, where the posterior reads them (see ``on_device``).
    Omega : array of shape (n, L, p)
        Prior means, in the namespace and on the device of ``X``.
    V : ndarray of shape (p, p)
        Prior covariance (host).
    on_device : bool
        Whether the channel's posterior runs where ``Omega`` lives; if not it
        runs on the host in float64 and only its mean moves back.

    Returns
    -------
    mean : array of shape (n, L, p)
        Where ``Omega`` lives.
    diag_cov : ndarray of shape (p, p)
        ``sum_{mu, l} Cov(z_l | y_mu)`` on the host, in float64.
    """
    if on_device:
        mean, cov, _ = channel.posterior(y, Omega, V)
    else:
        mean, cov, _ = channel.posterior(y, to_numpy(Omega, dtype=np.float64), V)
        mean = move_like(mean, Omega)
    xp = namespace_or_numpy(cov)
    L = cov.shape[1]
    blocks = sum(cov[:, l, :, l, :] for l in range(L))  # (n, p, p), one transfer below
    return mean, to_numpy(xp.sum(blocks, axis=0), dtype=np.float64)


class SequenceMultiIndexAMP(BaseEstimator):
    """Bayes-optimal GAMP for sequence multi-index models.

    The model is ``y_mu ~ P_out(. | X_mu W / sqrt(d))`` with ``X_mu`` of
    shape (L, d) (``L`` tokens), ``W`` of shape (d, p) with i.i.d.
    ``N(0, I_p)`` rows, and the channel ``P_out`` given as a channel object
    from :mod:`skmoe.amp`.  ``fit`` runs generalised approximate message
    passing in matrix form: ``p x p`` variances shared by all rows, the
    channel posterior over all ``L`` tokens at once (the output denoiser),
    and the Gaussian-prior input denoiser.  Its fixed points are described
    by :func:`skmoe.amp.state_evolution`.

    Under ``sklearn.set_config(array_api_dispatch=True)``, ``X`` may be a
    CuPy, PyTorch or any array-API array: the two products with ``X`` per
    iteration (the data-sized work) run in its namespace and on its device,
    in its dtype, and ``coef_`` and ``posterior_covariance_`` live there too.
    So does the channel posterior (the output denoiser) of the closed-form
    channels; :class:`~skmoe.amp.DeepAttentionChannel` and
    :class:`~skmoe.amp.GenericChannel` compute it on the host in float64
    (``channel.array_api_posterior`` is False), which costs moving the
    ``(n_samples, L, p)`` fields and moments once per iteration.  The ``p x p``
    algebra runs on the host; ``history_`` stays there.

    dtype: float32 ``X`` gives float32 ``coef_``, ``posterior_covariance_``
    and predictions.  NumPy ``X`` is processed in float64 and the results are
    rounded to its dtype once, at the end; array-API ``X`` is processed in
    its own dtype.  ``history_`` and :meth:`overlaps` are float64 summaries.

    Parameters
    ----------
    channel : channel object
        Output channel, e.g. :class:`skmoe.amp.DeepAttentionChannel`; it
        fixes the number of tokens ``L`` and of directions ``p``.  ``fit``
        works on a deep copy, which :meth:`predict` and :meth:`score` use:
        changing the channel after ``fit`` (``set_params`` or in place) has
        no effect until the next ``fit``.
    n_directions : int, default=None
        Number of columns of ``W``; must equal ``channel.n_directions`` if
        given (a consistency check).
    prior : {"gaussian"}, default="deprecated"
        Prior of the rows of ``W``; it is always ``N(0, I_p)``, whatever the
        value, and the parameter is not read.

        .. deprecated:: 0.1
           ``prior`` has no effect and will be removed in 0.3; setting it
           explicitly emits a ``FutureWarning`` at ``fit``.
    damping : float, default=0.8
        Every update is ``x <- damping * x_new + (1 - damping) * x_old``.
    max_iter : int, default=100
        Maximum number of GAMP iterations.
    tol : float, default=1e-6
        Stop when the mean squared change of the entries of ``coef_`` in one
        iteration is below ``tol``.  A ``ConvergenceWarning`` is emitted if
        that does not happen within ``max_iter`` iterations.
    init_scale : float, default=0.1
        Standard deviation of the random initial entries of ``coef_``; the
        initial posterior covariance is ``(1 - init_scale**2) I``.
    random_state : int, RandomState instance or None, default=None
        Seed of the random initialisation.
    verbose : int, default=0
        Progress lines (iteration, mean self-overlap ``tr(Q) / p``, change,
        elapsed time, ETA) in the format of every skmoe iterative fit: 0
        prints nothing, 1 a line every tenth iteration, 2 or more a line
        every iteration; a closing line when the loop ends.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_directions)
        Posterior mean of ``W``.
    posterior_covariance_ : ndarray of shape (n_directions, n_directions)
        Posterior covariance of each row of ``W`` (the same for every row
        under the Gaussian prior).
    n_iter_ : int
        Number of iterations run.
    converged_ : bool
        Whether ``tol`` was reached.
    history_ : dict of ndarray
        The iterations, one row each (``n_iter_`` rows), in the format of
        every skmoe iterative fit: ``"iteration"`` (1, 2, ...),
        ``"objective"`` (the mean self-overlap ``tr(Q) / p``), ``"change"``
        (the mean squared change of the entries of ``coef_``, the quantity
        compared with ``tol``), ``"elapsed"`` (seconds since the start of the
        iterations), ``"Q"`` of shape (``n_iter_``, p, p), the self-overlaps
        ``coef_^T coef_ / d`` after each iteration, and, only when ``W_star``
        is passed to ``fit``, ``"M"`` of shape (``n_iter_``, p, p), the
        overlaps ``coef_^T W* / d``.  NumPy arrays on the host (``"iteration"``
        int64, the others float64).
    n_features_in_ : int
        Dimension ``d`` of each token.
    n_tokens_in_ : int
        Number of tokens ``L``.

    See Also
    --------
    skmoe.amp.state_evolution : Asymptotic overlaps of this estimator.
    skmoe.datasets.make_sequence_multi_index : Data from the same model.

    Notes
    -----
    Deviation from scikit-learn conventions: ``X`` is 3-D, of shape
    (n_samples, n_tokens, n_features), and ``y`` has the shape fixed by the
    channel, so scikit-learn's common estimator checks (which feed 2-D ``X``
    and 1-D ``y``) do not apply; ``n_features_in_`` is ``d``, the last axis.
    The channel term ``A = -(1/d) sum dg_out`` is symmetrised and its
    eigenvalues clipped at 0, which only matters far from the fixed point.

    Examples
    --------
    >>> from skmoe.amp import SquareChannel, SequenceMultiIndexAMP
    >>> from skmoe.datasets import make_sequence_multi_index
    >>> ch = SquareChannel(n_tokens=2)
    >>> X, y, W = make_sequence_multi_index(600, 200, ch, random_state=0)
    >>> amp = SequenceMultiIndexAMP(ch, random_state=0).fit(X, y, W_star=W)
    >>> M, Q = amp.overlaps(W)
    >>> bool(abs(M[0, 0]) > 0.8)
    True
    """

    _parameter_constraints: dict = {
        "channel": [HasMethods(["posterior", "output", "check_y"])],
        "n_directions": [StrictIntInterval(1, None, closed="left"), None],
        "prior": [StrOptions({"gaussian"}), Hidden(StrOptions({"deprecated"}))],
        "damping": [Interval(Real, 0, 1, closed="right")],
        "max_iter": [StrictIntInterval(1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init_scale": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, channel, *, n_directions=None, prior="deprecated", damping=0.8,
                 max_iter=100, tol=1e-6, init_scale=0.1, random_state=None, verbose=0):
        self.channel = channel
        self.n_directions = n_directions
        self.prior = prior
        self.damping = damping
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    def _check_X(self, X, channel, reset, method="fit"):
        """Validated 3-D ``X`` (float64 or float32, in its own namespace).

        ``channel`` is the one being fitted (``reset=True``) or the fitted one.
        """
        if not reset:
            check_same_namespace(X, self, attribute="coef_", method=method)
        xp = array_api_namespace(X)
        X = check_array(X, allow_nd=True, ensure_2d=False, dtype=supported_float_dtypes(xp))
        if X.ndim == 2 and channel.n_tokens == 1:
            # One token: the classical (non-sequence) multi-index model.
            X = namespace_or_numpy(X).reshape(X, (X.shape[0], 1, X.shape[1]))
        if X.ndim != 3:
            single = " (or (n_samples, n_features) for a single-token channel)"
            raise ValueError(
                "SequenceMultiIndexAMP expects X of shape (n_samples, n_tokens, "
                f"n_features) (3-D){single if channel.n_tokens == 1 else ''}, got "
                f"an array with {X.ndim} dimension(s) and shape {X.shape}. Reshape your "
                "data accordingly."
            )
        L = channel.n_tokens
        if X.shape[1] != L:
            raise ValueError(
                f"X has {X.shape[1]} tokens (axis 1) but the channel {channel!r} "
                f"has n_tokens={L}."
            )
        if X.shape[2] == 0:
            raise ValueError(
                f"0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required."
            )
        if reset:
            self.n_features_in_ = X.shape[2]
            self.n_tokens_in_ = X.shape[1]
        elif X.shape[2] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the last axis of X)."
            )
        return X

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, W_star=None):
        """Run GAMP on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_tokens, n_features)
            Input sequences; ``(n_samples, n_features)`` is accepted when the
            channel has a single token.
        y : array-like of shape (n_samples,) + channel.y_trailing_shape
            Targets.
        W_star : array-like of shape (n_features, n_directions), default=None
            Ground truth, only used to record overlaps in ``history_["M"]``.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        warn_deprecated_param(
            self, "prior", "It has no effect: the prior of the rows of W is always N(0, I_p)."
        )
        if isinstance(self.channel, type):
            raise ValueError(
                f"channel must be a channel instance, e.g. {self.channel.__name__}(), got "
                f"the class {self.channel.__name__} itself."
            )
        # predict and score read this copy: set_params(channel=...) after fit
        # (or changing the channel object in place) changes nothing until the
        # next fit.
        fitted_params = snapshot_params(self, ["channel"])
        channel = fitted_params["channel"]
        channel.check_posterior_support()
        p = channel.n_directions
        if self.n_directions is not None and self.n_directions != p:
            raise ValueError(f"n_directions={self.n_directions} does not match the channel "
                             f"({channel!r} has n_directions={p}).")
        X = self._check_X(X, channel, reset=True)
        n, L, d = X.shape
        # NumPy X is processed in float64 and the results are stored in its
        # dtype; other namespaces compute in their own dtype on their device.
        # Host/device moves are no-ops for NumPy X (xp is None).
        xp, where, input_dtype = array_api_namespace(X), device(X), X.dtype
        if xp is None:
            X = np.asarray(X, dtype=np.float64)

        def to_device(a):
            return from_numpy(a, xp, where, dtype=X.dtype)

        y = channel.check_y(to_numpy(y), n_samples=n)
        posterior_on_device = getattr(channel, "array_api_posterior", False)
        if posterior_on_device:
            y = to_device(y)  # else the posterior reads float64 y on the host
        if W_star is not None:
            W_star = _check_ground_truth(W_star, (d, p))
        rng = check_random_state(self.random_state)
        # (n L, d) view: the two products per iteration are plain BLAS matmuls.
        xp_or_np = namespace_or_numpy(X)
        X_rows = xp_or_np.reshape(X, (n * L, d))
        sqrt_d = float(np.sqrt(d))
        eye = np.eye(p)
        W_host = self.init_scale * rng.standard_normal((d, p))
        W = to_device(W_host)
        C = (1.0 - self.init_scale**2) * eye
        G = to_device(np.zeros((n, L, p)))
        monitor = ConvergenceMonitor(
            tol=self.tol, max_iter=self.max_iter, verbose=self.verbose,
            label="SequenceMultiIndexAMP GAMP", objective_name="overlap",
        )
        damp = float(self.damping)  # a NumPy scalar could promote float32 arrays
        for iteration in range(1, self.max_iter + 1):
            # Floor the eigenvalues of V: near perfect recovery V -> 0.
            V = _sym_psd_clip(C, floor=1e-9)
            Vinv = np.linalg.inv(V)
            # Data-sized arrays (Omega, G) stay where X lives; only p x p
            # summaries come to the host.
            Omega = xp_or_np.reshape(X_rows @ W, (n, L, p)) / sqrt_d - G @ to_device(V)
            mean, diag_cov = _output_denoiser(channel, y, Omega, V, posterior_on_device)
            G_new = (mean - Omega) @ to_device(Vinv)
            # A = -(1/d) sum_{mu,l} dg_ll,  dg_ll = V^-1 C_ll V^-1 - V^-1.
            A_new = _sym_psd_clip(-(Vinv @ diag_cov @ Vinv - n * L * Vinv) / d)
            if iteration == 1:
                G, A = G_new, A_new
            else:
                G = damp * G_new + (1 - damp) * G
                A = damp * A_new + (1 - damp) * A
            B = X_rows.T @ xp_or_np.reshape(G, (n * L, p)) / sqrt_d + W @ to_device(A)
            C = np.linalg.inv(A + eye)
            W_old_host = W_host
            W = B @ to_device(C)
            W_host = to_numpy(W, dtype=np.float64)
            Q = W_host.T @ W_host / d
            overlaps = {"Q": Q} if W_star is None else {"Q": Q, "M": W_host.T @ W_star / d}
            stop = monitor.report(
                np.trace(Q) / p, change=float(np.mean((W_host - W_old_host) ** 2)), **overlaps
            )
            if not np.all(np.isfinite(W_host)):
                raise FloatingPointError(
                    "GAMP diverged (non-finite estimates); increase damping towards 0 "
                    "(e.g. damping=0.5) or check that y was generated by the channel."
                )
            if stop:
                break
        changes = monitor.history["change"]
        monitor.finish(warn=False)
        if len(changes) > 1 and changes[-1] > changes[0]:
            # Growing steps mean divergence, not slow convergence.
            monitor.warn_if_not_converged(hint=(
                "The iterates diverged: GAMP assumes X with i.i.d. standard Gaussian "
                "entries (standardise X) and y generated by the channel; a damping "
                "closer to 0 (e.g. 0.5) may also help."
            ))
        else:
            monitor.warn_if_not_converged()
        self.coef_ = W if xp is not None else W.astype(input_dtype, copy=False)
        self.posterior_covariance_ = from_numpy(0.5 * (C + C.T), xp, where, dtype=input_dtype)
        self.n_iter_ = monitor.n_iter
        self.converged_ = monitor.converged
        self.history_ = monitor.history
        self._fitted_params = fitted_params
        return self

    def overlaps(self, W_star):
        """Overlaps ``M = coef_^T W* / d`` and ``Q = coef_^T coef_ / d``.

        Parameters
        ----------
        W_star : array-like of shape (n_features, n_directions)
            Ground-truth weights.

        Returns
        -------
        M : ndarray of shape (n_directions, n_directions)
            Overlap with the ground truth (NumPy, on the host).
        Q : ndarray of shape (n_directions, n_directions)
            Self-overlap (NumPy, on the host).
        """
        check_is_fitted(self)
        coef = to_numpy(self.coef_, dtype=np.float64)
        W_star = _check_ground_truth(W_star, coef.shape)
        d = coef.shape[0]
        return coef.T @ W_star / d, coef.T @ coef / d

    def predict(self, X, method="plugin", n_draws=64):
        """Predict the channel output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_tokens, n_features)
            Input sequences; ``(n_samples, n_features)`` is accepted when the
            channel has a single token.
        method : {"plugin", "bayes"}, default="plugin"
            "plugin" returns ``g(X coef_ / sqrt(d))``; "bayes" the predictive
            mean ``E[g(Z)]`` with ``Z ~ N(X coef_ / sqrt(d),
            posterior_covariance_)`` per token, by Monte Carlo with a fixed
            seed (deterministic).
        n_draws : int, default=64
            Monte Carlo draws for ``method="bayes"``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) + channel.y_trailing_shape
            Predictions, in the namespace and on the device of ``X``.
        """
        check_is_fitted(self)
        if method not in ("plugin", "bayes"):
            raise ValueError(f"method must be 'plugin' or 'bayes', got {method!r}.")
        n_draws = check_int(n_draws, "n_draws")
        channel = self._fitted_params["channel"]
        X = self._check_X(X, channel, reset=False, method="predict")
        n, L, d = X.shape
        xp = array_api_namespace(X)
        # Everything runs where X lives (NumPy: in float64).
        if xp is None:
            products = np.asarray(X, dtype=np.float64).reshape(n * L, d) @ np.asarray(
                self.coef_, dtype=np.float64
            )
            Omega = products.reshape(n, L, -1)
        else:
            Omega = xp.reshape(xp.reshape(X, (n * L, d)) @ self.coef_, (n, L, -1))
        Omega = Omega / float(np.sqrt(d))
        if method == "plugin":
            y_pred = channel.output(Omega)
        else:
            root = move_like(
                _sym_sqrt(to_numpy(self.posterior_covariance_, dtype=np.float64)), Omega)
            # Host draws with a fixed seed: the same predictions on every device.
            rng = np.random.RandomState(0)
            y_pred = 0.0
            for _ in range(n_draws):
                noise = standard_normal_like(rng, Omega.shape, Omega)
                y_pred = y_pred + channel.output(Omega + noise @ root)
            y_pred = y_pred / n_draws
        if xp is None:
            return y_pred.astype(X.dtype, copy=False)
        return y_pred

    def score(self, X, y, method="plugin"):
        """Negative mean squared prediction error ``-mean ||y - y_pred||^2``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_tokens, n_features)
            Input sequences; ``(n_samples, n_features)`` is accepted when the
            channel has a single token.
        y : array-like of shape (n_samples,) + channel.y_trailing_shape
            Targets.
        method : {"plugin", "bayes"}, default="plugin"
            Predictor, see :meth:`predict`.

        Returns
        -------
        score : float
            Negative mean (over samples) squared Frobenius error.
        """
        check_is_fitted(self)
        # Validate y before predicting: "bayes" costs n_draws forward passes.
        y = self._fitted_params["channel"].check_y(to_numpy(y), n_samples=np.shape(X)[0])
        y_pred = to_numpy(self.predict(X, method=method), dtype=np.float64)
        return -float(np.mean(np.sum((y - y_pred).reshape(len(y), -1) ** 2, axis=1)))
