"""State evolution and weak-recovery thresholds of Bayes-optimal GAMP.

Notation (Gaussian prior ``rho = I``): ``q`` is the ``p x p`` overlap, and
with ``xi, eta`` i.i.d. standard normal of shape (L, p),

.. math::

    \\Omega = \\xi q^{1/2},\\quad Z = \\Omega + \\eta (I - q)^{1/2},\\quad
    y \\sim P_{\\rm out}(\\cdot \\mid Z),\\quad V = I - q,

    \\hat q = \\alpha\\, \\mathbb E \\sum_l g_{{\\rm out},l} g_{{\\rm out},l}^\\top,
    \\qquad q = \\hat q (I + \\hat q)^{-1}.

The expectation over ``(xi, eta, y)`` is a Monte Carlo average over fixed
draws (common random numbers across iterations, so that the iteration is a
deterministic map).

Under ``sklearn.set_config(array_api_dispatch=True)`` an array-API ``q_init``
(``q`` for :func:`test_errors`) moves the Monte Carlo work -- the fields, the
channel posterior and output, the reductions -- to its namespace and device.
The draws are made on the host with NumPy, so a seed gives the same samples
everywhere, and the ``p x p`` algebra stays on the host.  Channels whose
posterior runs on the host (``array_api_posterior`` False) are simulated on
the host; their ``q``, ``q_hat`` and ``history`` still come back in the
namespace of ``q_init``.
"""

from numbers import Real

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params

from ..utils._array_api import (
    array_api_namespace,
    move_like,
    namespace_or_numpy,
    standard_normal_like,
    to_numpy,
)
from ..utils._monitor import ConvergenceMonitor
from ..utils._validation import StrictIntInterval, check_finite_output, draw_seed
from ._channels import tensor_gauss_hermite

__all__ = ["state_evolution", "weak_recovery_threshold", "test_errors"]

_EPS = 1e-6


def spectral_map(M, func):
    """``U func(w) U^T`` for the eigendecomposition ``U diag(w) U^T`` of ``(M + M^T) / 2``.

    The one place where overlap and covariance matrices are symmetrised and
    have their spectrum clipped or transformed.
    """
    w, U = np.linalg.eigh(0.5 * (M + M.T))
    return (U * func(w)) @ U.T


def _sym_sqrt(M):
    """Square root of the positive part of the symmetric matrix ``M``."""
    return spectral_map(M, lambda w: np.sqrt(np.clip(w, 0.0, None)))


def _clip_overlap(q):
    """Symmetrise and clip eigenvalues of ``q`` to ``[0, 1 - 1e-6]``."""
    return spectral_map(q, lambda w: np.clip(w, 0.0, 1.0 - _EPS))


def _correlated_fields(q, xi, eta):
    """``Omega = xi q^1/2`` and ``Z = Omega + eta (I - q)^1/2`` for standard normal ``xi, eta``.

    ``(Omega, Z)`` then has the joint law of state evolution at overlap ``q``:
    ``Omega ~ N(0, q)``, ``Z | Omega ~ N(Omega, I - q)`` per token.
    """
    Omega = xi @ move_like(_sym_sqrt(q), xi)
    return Omega, Omega + eta @ move_like(_sym_sqrt(np.eye(q.shape[0]) - q), eta)


def _as_overlap(q, p, name="q"):
    """``q`` as a finite ``p x p`` float64 host matrix (from a scalar, a diagonal or a matrix)."""
    try:
        q = to_numpy(q, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {q!r}.") from exc
    if not np.all(np.isfinite(q)):
        raise ValueError(f"{name} contains NaN or infinity.")
    if q.ndim == 0:
        q = q * np.eye(p)
    elif q.ndim == 1:
        q = np.diag(q)
    if q.shape != (p, p):
        raise ValueError(f"{name} must be a scalar, a length-{p} vector or a {p}x{p} matrix, "
                         f"got shape {q.shape}.")
    return q


def _check_directions(directions, p):
    """``directions`` as a sorted array of distinct indices in ``[0, p)``."""
    values = np.asarray(directions)
    if (values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iu"
            or np.any(values < 0) or np.any(values >= p) or np.unique(values).size != values.size):
        raise ValueError(
            f"directions must be a non-empty 1-D list of distinct integer indices in "
            f"[0, {p}) (n_directions={p}), got {directions!r}."
        )
    return np.sort(values)


def _draw(channel, q, xi, eta, noise_seed):
    """Omega, Z, y and V = I - q for the standard normal draws ``xi, eta``."""
    Omega, Z = _correlated_fields(q, xi, eta)
    y = channel.sample(Z, random_state=noise_seed)
    return Omega, Z, y, np.eye(channel.n_directions) - q


def _q_hat(channel, alpha, q, xi, eta, noise_seed):
    """``q_hat`` (host, p x p) and the mean ``log Z_out`` at overlap ``q``."""
    Omega, Z, y, V = _draw(channel, q, xi, eta, noise_seed)
    mean, _, logZ = channel.posterior(y, Omega, V)
    n, L, p = Omega.shape
    g = (mean - Omega) @ move_like(np.linalg.inv(V), Omega)
    xp = namespace_or_numpy(g)
    g = xp.reshape(g, (n * L, p))
    qh = alpha * to_numpy(g.T @ g, dtype=np.float64) / n
    return 0.5 * (qh + qh.T), float(to_numpy(xp.mean(logZ)))


def _array_api_reference(q):
    """``q`` as a floating array if it is an array-API array dispatch applies to, else None.

    Its namespace, device and dtype are those of the results (an integer
    ``q`` gives float64).
    """
    xp = array_api_namespace(q)
    if xp is None:
        return None
    return q if xp.isdtype(q.dtype, "real floating") else xp.astype(q, xp.float64)


def _simulation_reference(channel, reference):
    """Where the Monte Carlo runs: ``reference``, or None (the host) for host posteriors.

    A channel whose posterior runs on the host (``array_api_posterior``
    False) is simulated there in float64 -- moving the fields back and forth
    every iteration would cost more than it saves, and float32 softmax
    targets would underflow.
    """
    return reference if getattr(channel, "array_api_posterior", False) else None


# A channel is anything with this interface (see skmoe.amp.BaseChannel).
_CHANNEL = [HasMethods(["sample", "output", "posterior", "check_posterior_support"])]
_OVERLAP = [Real, "array-like"]
_SEED = ["random_state"]
_COUNT = StrictIntInterval(1, None, closed="left")


@validate_params(
    {"channel": _CHANNEL, "q": _OVERLAP, "n_samples": [_COUNT],
     "n_inner": [StrictIntInterval(2, None, closed="left")], "random_state": _SEED},
    prefer_skip_nested_validation=True,
)
def test_errors(channel, q, *, n_samples=20000, n_inner=32, random_state=0):
    """Plug-in and Bayes-optimal test errors at overlap ``q``.

    Parameters
    ----------
    channel : channel object
        A channel from :mod:`skmoe.amp`.
    q : float, array-like of shape (p,) or (p, p)
        Overlap matrix (``rho = I``).  An array-API array (with dispatch
        enabled) runs the Monte Carlo in its namespace and on its device.
    n_samples : int, default=20000
        Monte Carlo samples of ``(Omega, Z)``.
    n_inner : int, default=32
        Inner draws ``Z' | Omega`` for the Bayes-optimal predictor (the
        estimate of ``||E[g | Omega]||^2`` is the unbiased U-statistic).
    random_state : int, RandomState instance or None, default=0
        Seed of the Monte Carlo draws.

    Returns
    -------
    result : Bunch
        ``plugin``: ``E||g(Z) - g(Omega)||_F^2``; ``bayes``:
        ``E||g(Z) - E[g(Z') | Omega]||_F^2``; ``plugin_std`` and
        ``bayes_std``: Monte Carlo standard errors.

    Examples
    --------
    >>> from skmoe.amp import DeepAttentionChannel, test_errors
    >>> res = test_errors(DeepAttentionChannel(), 0.0, n_samples=2000)
    >>> round(res.plugin, 1)
    0.4
    """
    rng = check_random_state(random_state)
    L, p = channel.n_tokens, channel.n_directions
    reference = _simulation_reference(channel, _array_api_reference(q))
    q = _clip_overlap(_as_overlap(q, p))
    shape = (n_samples, L, p)
    Omega, Z = _correlated_fields(q, standard_normal_like(rng, shape, reference),
                                  standard_normal_like(rng, shape, reference))
    xp = namespace_or_numpy(Omega)
    sv = move_like(_sym_sqrt(np.eye(p) - q), Omega)

    def flat_output(Z):
        return xp.reshape(channel.output(Z), (n_samples, -1))

    gz, go = flat_output(Z), flat_output(Omega)
    plug = xp.sum((gz - go) ** 2, axis=1)
    # Running sums over the inner draws: sum_k g_k and sum_k ||g_k||^2.
    inner_sum = xp.zeros_like(gz)
    inner_sq = xp.zeros_like(plug)
    for _ in range(n_inner):
        g = flat_output(Omega + standard_normal_like(rng, shape, reference) @ sv)
        inner_sum = inner_sum + g
        inner_sq = inner_sq + xp.sum(g**2, axis=1)
    u_stat = (xp.sum(inner_sum**2, axis=1) - inner_sq) / (n_inner * (n_inner - 1))
    bayes = xp.sum(gz**2, axis=1) - u_stat
    plug, bayes = to_numpy(plug, dtype=np.float64), to_numpy(bayes, dtype=np.float64)
    hint = "The channel's output overflows (or is not finite) at these overlaps."
    check_finite_output(plug, "Monte Carlo plug-in test error", hint=hint)
    check_finite_output(bayes, "Monte Carlo Bayes test error", hint=hint)
    sqrt_n = np.sqrt(n_samples)
    return Bunch(plugin=float(plug.mean()), plugin_std=float(plug.std() / sqrt_n),
                 bayes=float(bayes.mean()), bayes_std=float(bayes.std() / sqrt_n))


test_errors.__test__ = False  # not a pytest test


@validate_params(
    {"channel": _CHANNEL, "alpha": [Interval(Real, 0, None, closed="neither")],
     "q_init": _OVERLAP, "directions": ["array-like", None],
     "damping": [Interval(Real, 0, 1, closed="right")], "max_iter": [_COUNT],
     "tol": [Interval(Real, 0, None, closed="left")], "n_samples": [_COUNT],
     "compute_test_errors": ["boolean"], "n_inner": [StrictIntInterval(2, None, closed="left")],
     "random_state": _SEED},
    prefer_skip_nested_validation=True,
)
def state_evolution(channel, alpha, *, q_init=0.05, directions=None, damping=0.8,
                    max_iter=100, tol=1e-4, n_samples=20000, compute_test_errors=True,
                    n_inner=32, random_state=0):
    """Iterate the state evolution of Bayes-optimal GAMP at sample ratio ``alpha``.

    Parameters
    ----------
    channel : channel object
        A channel from :mod:`skmoe.amp` (anything with ``n_tokens``,
        ``n_directions``, ``sample``, ``output`` and ``posterior``).
    alpha : float
        Sample ratio ``n / d``.
    q_init : float, array-like of shape (p,) or (p, p), default=0.05
        Initial overlap (``q = 0`` is a fixed point of even channels).  An
        array-API array (with dispatch enabled) runs the Monte Carlo in its
        namespace, on its device and in its dtype (float64 for an integer
        array) when the channel's posterior runs there; ``q``, ``q_hat`` and
        ``history`` are returned there in every case.
    directions : array-like of int, default=None
        If given, the overlap is kept zero outside the block
        ``directions x directions`` (used for staircase thresholds:
        "which layers are learned if the others are not").
    damping : float, default=0.8
        ``q <- damping * q_new + (1 - damping) * q_old``.
    max_iter : int, default=100
        Maximum number of iterations.
    tol : float, default=1e-4
        Stop when the largest absolute change of ``q`` in one iteration is
        below ``tol`` (``tol=0`` runs exactly ``max_iter`` iterations, and
        warns).
    n_samples : int, default=20000
        Monte Carlo samples of ``(xi, eta)`` (fixed across iterations).
    compute_test_errors : bool, default=True
        Also compute the plug-in and Bayes-optimal test errors at the fixed
        point (see :func:`test_errors`).
    n_inner : int, default=32
        Inner draws for the Bayes-optimal test error.
    random_state : int, RandomState instance or None, default=0
        Seed of the Monte Carlo draws.

    Returns
    -------
    result : Bunch
        ``q`` (p, p) fixed point; ``q_hat``; ``history`` (n_iter + 1, p, p)
        overlaps, the initial one first; ``n_iter``; ``converged``;
        ``monitor_history``, the iterations in the format of every skmoe
        iterative fit (a dict of ``n_iter``-long NumPy arrays, ``"iteration"`` int64:
        ``"iteration"``, ``"objective"`` the mean overlap ``Tr(q)/p``,
        ``"change"`` the largest absolute change of ``q``, compared with
        ``tol``, and ``"elapsed"`` seconds); ``weight_mse`` ``Tr(I - q)/p``;
        ``free_entropy`` (Gaussian-prior replica potential, up to
        ``alpha`` times a constant that does not depend on ``q``); and, if
        requested, ``test_error`` (plug-in), ``bayes_test_error`` and their
        Monte Carlo standard errors.

    Warns
    -----
    ConvergenceWarning
        If the change of ``q`` is still above ``tol`` after ``max_iter``
        iterations (the text common to every skmoe iterative fit).

    Examples
    --------
    >>> from skmoe.amp import AbsChannel, state_evolution
    >>> res = state_evolution(AbsChannel(), 2.0, n_samples=5000,
    ...                       compute_test_errors=False)
    >>> bool(res.q[0, 0] > 0.5)
    True
    """
    channel.check_posterior_support()
    L, p = channel.n_tokens, channel.n_directions
    result_reference = _array_api_reference(q_init)
    reference = _simulation_reference(channel, result_reference)
    mask = np.ones((p, p))
    if directions is not None:
        d = np.zeros(p)
        d[_check_directions(directions, p)] = 1.0
        mask = np.outer(d, d)
    rng = check_random_state(random_state)
    xi = standard_normal_like(rng, (n_samples, L, p), reference)
    eta = standard_normal_like(rng, (n_samples, L, p), reference)
    noise_seed = draw_seed(rng)
    q = _clip_overlap(_as_overlap(q_init, p, "q_init") * mask)
    history = [q.copy()]
    monitor = ConvergenceMonitor(tol=tol, max_iter=max_iter, label="state_evolution",
                                 objective_name="overlap")
    for _ in range(max_iter):
        qh, _ = _q_hat(channel, alpha, q, xi, eta, noise_seed)
        qh = qh * mask
        q_new = qh @ np.linalg.inv(np.eye(p) + qh)
        q_new = _clip_overlap(damping * q_new + (1 - damping) * q) * mask
        change = np.max(np.abs(q_new - q))
        q = q_new
        history.append(q.copy())
        if monitor.report(np.trace(q) / p, change=change):
            break
    monitor.finish()
    qh, mean_logZ = _q_hat(channel, alpha, q, xi, eta, noise_seed)
    qh = qh * mask
    free_entropy = (-0.5 * np.trace(q @ qh) + 0.5 * (np.trace(qh) - np.linalg.slogdet(
        np.eye(p) + qh)[1]) + alpha * mean_logZ)
    weight_mse = float(np.trace(np.eye(p) - q) / p)
    history = np.array(history)
    if result_reference is not None:
        q, qh, history = (move_like(a, result_reference) for a in (q, qh, history))
    result = Bunch(q=q, q_hat=qh, history=history, n_iter=monitor.n_iter,
                   converged=monitor.converged, monitor_history=monitor.history,
                   weight_mse=weight_mse, free_entropy=float(free_entropy))
    if compute_test_errors:
        err = test_errors(channel, q, n_samples=n_samples, n_inner=n_inner,
                          random_state=draw_seed(rng))
        result.update(test_error=err.plugin, test_error_std=err.plugin_std,
                      bayes_test_error=err.bayes, bayes_test_error_std=err.bayes_std)
    return result


# --------------------------------------------------------------------------
# Linear stability
# --------------------------------------------------------------------------


def _gauss_hermite_Z(L, p, n_nodes):
    """Tensor Gauss-Hermite nodes ``Z`` of shape (K, L, p) and weights (K,)."""
    nodes, log_weights = tensor_gauss_hermite(L * p, n_nodes)
    return nodes.reshape(-1, L, p), np.exp(log_weights)


def _stability_terms(channel, Omega, Z, V, dirs, noise_seed):
    """Per-sample ``sum_{l,l'} G_{ll'} (x) G_{ll'}`` restricted to ``dirs``."""
    y = channel.sample(Z, random_state=noise_seed)
    mean, cov, _ = channel.posterior(y, Omega, V)
    second = cov + mean[:, :, :, None, None] * mean[:, None, None, :, :]
    G = second[:, :, dirs][:, :, :, :, dirs]  # (n, L, r, L, r)
    r = len(dirs)
    G = G - np.einsum("lm,ij->limj", np.eye(channel.n_tokens), np.eye(r))[None]
    # vec(G M G^T)_{(i,k)} = sum_{j,h} G_ij G_kh M_jh, summed over (l, l').
    K = np.einsum("nlimj,nlkmh->nikjh", G, G)
    return K.reshape(G.shape[0], r * r, r * r)


def _top_eigen(K, r):
    """Top eigenpair of the operator ``K`` restricted to symmetric r x r matrices."""
    T = np.zeros((r * r, r * r))
    for i in range(r):
        for j in range(r):
            T[i * r + j, j * r + i] = 1.0
    P = 0.5 * (np.eye(r * r) + T)
    S = P @ (0.5 * (K + K.T)) @ P
    w, U = np.linalg.eigh(S)
    vec = U[:, -1].reshape(r, r)
    if np.trace(vec) < 0:
        vec = -vec
    return float(w[-1]), vec


@validate_params(
    {"channel": _CHANNEL, "directions": ["array-like", None],
     "learned_overlap": _OVERLAP + [None],
     "method": [StrOptions({"auto", "quadrature", "mc"})], "n_samples": [_COUNT],
     "n_batches": [StrictIntInterval(2, None, closed="left")], "n_nodes": [_COUNT],
     "random_state": _SEED},
    prefer_skip_nested_validation=True,
)
def weak_recovery_threshold(channel, *, directions=None, learned_overlap=None,
                            method="auto", n_samples=100000, n_batches=10, n_nodes=30,
                            random_state=0):
    """Weak-recovery threshold ``alpha_c = 1 / lambda_max(F)`` by linear stability.

    Around an uninformative block of directions, state evolution linearises
    to ``q^{t+1} = alpha F(q^t)`` with

    .. math::

        F(M) = \\sum_{l,l'} \\mathbb E_y[G_{ll'} M G_{ll'}^\\top],\\qquad
        G_{ll'} = \\mathbb E[z_l z_{l'}^\\top \\mid y, \\Omega] - \\delta_{ll'} I,

    acting on symmetric matrices supported on ``directions``.

    Parameters
    ----------
    channel : channel object
        An even channel from :mod:`skmoe.amp`.
    directions : array-like of int, default=None
        The block of directions whose threshold is computed (default: all).
    learned_overlap : array-like of shape (p, p), default=None
        Overlap of already-learned directions (zero on ``directions``): the
        expectation is then conditioned on ``Omega = xi q^{1/2}`` with
        ``V = I - q`` (the staircase: the threshold of the remaining block
        at this ``q``, to be compared with the ``alpha`` that produced it).
        Default: ``q = 0``.
    method : {"auto", "quadrature", "mc"}, default="auto"
        Expectation over ``y``: tensor Gauss-Hermite over ``Z`` (exact for
        polynomial integrands; noiseless channels, ``q = 0`` and
        ``n_tokens * n_directions <= 4``) or Monte Carlo.  "auto" picks
        quadrature whenever it applies, except for channels whose posterior is
        itself a quadrature (``posterior_is_quadrature``, e.g.
        :class:`DeepAttentionChannel`), where Monte Carlo is cheaper.
    n_samples : int, default=100000
        Monte Carlo samples (method "mc").
    n_batches : int, default=10
        Independent batches the ``n_samples`` Monte Carlo samples are split
        into, for the standard error; at most ``n_samples`` (method "mc").
    n_nodes : int, default=30
        Gauss-Hermite nodes per dimension (method "quadrature"); the error
        is estimated against ``n_nodes + 8`` nodes.
    random_state : int, RandomState instance or None, default=0
        Seed of the Monte Carlo draws.

    Returns
    -------
    result : Bunch
        ``threshold`` (``inf`` if the top eigenvalue is 0; ``0`` for channels
        that are not even, where ``E[Z | y] != 0`` and any ``alpha > 0``
        gives a positive overlap), ``threshold_std`` (numerical
        uncertainty), ``eigenvalue``, ``eigenvector`` (r x r, the unstable
        direction of ``q``), ``operator`` (r^2 x r^2) and ``method``.

    Examples
    --------
    >>> from skmoe.amp import AbsChannel, weak_recovery_threshold
    >>> round(weak_recovery_threshold(AbsChannel()).threshold, 3)
    0.5
    """
    channel.check_posterior_support()
    L, p = channel.n_tokens, channel.n_directions
    dirs = np.arange(p) if directions is None else _check_directions(directions, p)
    r = len(dirs)
    if not getattr(channel, "even", True):
        return Bunch(threshold=0.0, threshold_std=0.0, eigenvalue=np.inf, eigenvector=None,
                     operator=None, method="not even: E[Z|y] != 0, no threshold")
    q = np.zeros((p, p)) if learned_overlap is None else _clip_overlap(
        _as_overlap(learned_overlap, p, "learned_overlap"))
    if np.any(np.abs(q[dirs]) > 0):
        raise ValueError("learned_overlap must vanish on the rows/columns of `directions`.")
    noisy = hasattr(channel, "noise_std")
    if method == "auto":
        method = ("quadrature" if (learned_overlap is None and not noisy and L * p <= 4
                                   and not getattr(channel, "posterior_is_quadrature", False))
                  else "mc")
    if method == "quadrature":
        if learned_overlap is not None or noisy or L * p > 5:
            raise ValueError("quadrature needs a noiseless channel, q = 0 and "
                             "n_tokens * n_directions <= 5.")
        V = np.eye(p)
        lam = []
        for nn in (n_nodes, n_nodes + 8):
            Z, W = _gauss_hermite_Z(L, p, nn)
            terms = _stability_terms(channel, np.zeros_like(Z), Z, V, dirs, None)
            K = np.einsum("n,nab->ab", W, terms)
            lam.append(_top_eigen(K, r) + (K,))
        eig, vec, K = lam[0]
        thr = 1.0 / eig
        thr_std = abs(thr - 1.0 / lam[1][0])
        return Bunch(threshold=thr, threshold_std=thr_std, eigenvalue=eig, eigenvector=vec,
                     operator=K, method="quadrature")
    if n_batches > n_samples:
        # Each batch has ceil(n_samples / n_batches) samples: more batches
        # than samples would silently draw n_batches samples in all.
        raise ValueError(
            f"n_batches={n_batches} exceeds n_samples={n_samples}: the n_samples Monte "
            "Carlo samples are split into n_batches batches (for the standard error), "
            "so n_batches must be <= n_samples."
        )
    rng = check_random_state(random_state)
    V = np.eye(p) - q
    shape = (-(-n_samples // n_batches), L, p)
    Ks = []
    for _ in range(n_batches):
        Omega, Z = _correlated_fields(q, rng.standard_normal(shape), rng.standard_normal(shape))
        terms = _stability_terms(channel, Omega, Z, V, dirs, draw_seed(rng))
        Ks.append(terms.mean(axis=0))
    K = np.mean(Ks, axis=0)
    eig, vec = _top_eigen(K, r)
    batch = np.array([1.0 / max(_top_eigen(Kb, r)[0], 1e-300) for Kb in Ks])
    thr = 1.0 / eig if eig > 0 else np.inf
    return Bunch(threshold=thr, threshold_std=float(batch.std(ddof=1) / np.sqrt(n_batches)),
                 eigenvalue=eig, eigenvector=vec, operator=K, method="mc")
