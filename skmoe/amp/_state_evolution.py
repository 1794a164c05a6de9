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
deterministic map).  At this Bayes-optimal point the Nishimori identity
``E[g g^T] = -E[d g / d omega]`` gives a second unbiased form of ``q_hat``
from the posterior covariance; the average uses the variance-minimising mix
of the two (:func:`_nishimori_combination`).

Under ``sklearn.set_config(array_api_dispatch=True)`` an array-API ``q_init``
(``q`` for :func:`test_errors`) moves the Monte Carlo work -- the fields, the
channel posterior and output, the reductions -- to its namespace and device.
The draws are made on the host with NumPy, so a seed gives the same samples
everywhere, and the ``p x p`` algebra stays on the host.  Channels whose
posterior runs on the host (``array_api_posterior`` False) are simulated on
the host; their ``q``, ``q_hat`` and ``history`` still come back in the
namespace of ``q_init``.
"""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import brentq
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

__all__ = ["staircase_thresholds", "state_evolution", "state_evolution_curve", "test_errors",
           "weak_recovery_threshold"]

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


def _token_diagonal_covariance(cov):
    """Per-sample sum over tokens of the token-diagonal posterior covariance blocks.

    Parameters
    ----------
    cov : array of shape (n_samples, n_tokens, p, n_tokens, p)
        Posterior covariance, as channels return it (any array-API namespace).

    Returns
    -------
    blocks : array of shape (n_samples, p, p)
        ``sum_l Cov(z_l | y)``, in the namespace and on the device of ``cov``.
    """
    return sum(cov[:, token, :, token, :] for token in range(cov.shape[1]))


def _nishimori_combination(score, curvature):
    """Per-sample terms of the minimum-variance mix of two unbiased estimators of one mean.

    At the Bayes-optimal (Nishimori) point ``E[g g^T] = -E[dg/domega]``, so
    the per-sample ``score`` terms ``sum_l g_l g_l^T`` and ``curvature``
    terms ``sum_l V^{-1} (V - Cov[z_l | y]) V^{-1}`` have the same mean, and
    their difference is a control variate with known mean zero.  Column by
    column, ``curvature + w (score - curvature)`` with ``w = -Cov(curvature,
    d) / Var(d)``, ``d = score - curvature``, has the smallest variance of
    all such mixes (never more than either estimator alone, up to the
    ``O(1/n)`` error of the estimated ``w``).  A column where the two
    coincide keeps the score terms.

    Parameters
    ----------
    score, curvature : ndarray of shape (n_samples, n_terms)

    Returns
    -------
    terms : ndarray of shape (n_samples, n_terms)
    """
    diff = score - curvature
    var_diff = diff.var(axis=0)
    cov = ((curvature - curvature.mean(axis=0)) * diff).mean(axis=0)
    tiny = np.finfo(np.float64).tiny
    w = np.divide(-cov, var_diff, out=np.ones_like(var_diff), where=var_diff > tiny)
    return curvature + w * diff


def _q_hat(channel, alpha, q, xi, eta, noise_seed):
    """``q_hat`` (host, p x p), its Monte Carlo covariance and the mean ``log Z_out``.

    ``q_hat / alpha`` is estimated by the variance-minimising mix of its two
    Bayes-optimal forms, ``E sum_l g_l g_l^T`` and ``-E sum_l dg_l/domega_l``
    (see :func:`_nishimori_combination`); both come from the same posterior
    moments, so the mix costs nothing extra.

    Returns
    -------
    q_hat : ndarray of shape (p, p)
    q_hat_cov_per_alpha2 : ndarray of shape (p * p, p * p)
        Covariance of the Monte Carlo mean ``vec(q_hat)`` divided by
        ``alpha ** 2`` (per-sample covariance of the mixed terms over the
        number of samples): ``alpha ** 2`` itself overflows for ``alpha``
        above about 1e154, where ``q_hat`` is still finite.
    mean_logZ : float
    """
    Omega, Z, y, V = _draw(channel, q, xi, eta, noise_seed)
    mean, cov, logZ = channel.posterior(y, Omega, V)
    n, L, p = Omega.shape
    V_inv = move_like(np.linalg.inv(V), Omega)
    g = (mean - Omega) @ V_inv
    xp = namespace_or_numpy(g)
    curvature = L * V_inv - V_inv @ _token_diagonal_covariance(cov) @ V_inv
    score = xp.sum(g[:, :, :, None] * g[:, :, None, :], axis=1)
    # Per-sample terms, flattened: (n, p * p), on the host.
    score, curvature = (to_numpy(xp.reshape(t, (n, p * p)), dtype=np.float64)
                        for t in (score, curvature))
    terms = _nishimori_combination(score, curvature)
    qh = alpha * terms.mean(axis=0).reshape(p, p)
    qh_cov = np.atleast_2d(np.cov(terms, rowvar=False)) / n if n > 1 else np.zeros((p * p,) * 2)
    return 0.5 * (qh + qh.T), qh_cov, float(to_numpy(xp.mean(logZ)))


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


# --------------------------------------------------------------------------
# Fixed-point solvers of the state evolution
# --------------------------------------------------------------------------

#: Memory of the Anderson solver (past iterates it extrapolates from).
_ANDERSON_MEMORY = 5
#: Non-decreasing residuals after which Anderson falls back to damped steps.
_ANDERSON_PATIENCE = 4
#: Largest sample count of the finite-difference Jacobian of the map.
_JACOBIAN_SAMPLES = 4000
#: Finite-difference step of that Jacobian (common random numbers make the
#: map smooth in q, so a small step is accurate).
_JACOBIAN_STEP = 1e-3
#: Restarts from unstable fixed points, and the size of the step off them.
_MAX_RESTARTS = 3
_RESTART_STEP = 0.05
#: Interior points of the segment an accelerated stage travelled that are
#: checked for a skipped fixed point, and the shortest segment checked.
_BRANCH_CHECKS = 7
_BRANCH_CHECK_MIN_LENGTH = 0.02


class _OverlapMap:
    """The state-evolution map ``q -> q_hat (I + q_hat)^{-1}`` on the free entries of ``q``.

    The free entries are the upper triangle of the block ``mask``; ``x`` is
    their vector.  The map is a Monte Carlo average over the first ``n``
    fixed draws (common random numbers), so it is a deterministic, smooth
    function of ``x`` for each ``n``, and prefixes of one stream of draws
    give nested sample sizes.
    """

    def __init__(self, channel, alpha, mask, xi, eta, noise_seed):
        self.channel, self.alpha, self.mask = channel, alpha, mask
        self.xi, self.eta, self.noise_seed = xi, eta, noise_seed
        p = mask.shape[0]
        rows, cols = np.triu_indices(p)
        keep = mask[rows, cols] > 0
        self.rows, self.cols = rows[keep], cols[keep]
        self.p = p
        self.n_evaluations = 0
        self._last = None

    def to_matrix(self, x):
        q = np.zeros((self.p, self.p))
        q[self.rows, self.cols] = x
        q[self.cols, self.rows] = x
        return q

    def to_vector(self, q):
        return q[self.rows, self.cols].copy()

    def clip(self, x):
        """``x`` projected on admissible overlaps (eigenvalues in ``[0, 1 - 1e-6]``)."""
        return self.to_vector(_clip_overlap(self.to_matrix(x)) * self.mask)

    def __call__(self, x, n):
        """Map of ``x`` at ``n`` samples and the Monte Carlo covariance of its entries.

        Returns ``(x_new, cov, q_hat, mean_logZ)``.  The last evaluation is
        kept: the solver asks for the map at a stage's starting point twice
        (for its Monte Carlo error, then for the first step).
        """
        if self._last is not None and self._last[0] == n and np.array_equal(self._last[1], x):
            return self._last[2]
        self.n_evaluations += 1
        qh, qh_cov_per_alpha2, mean_logZ = _q_hat(
            self.channel, self.alpha, self.to_matrix(x), self.xi[:n, ...], self.eta[:n, ...],
            self.noise_seed)
        qh = qh * self.mask
        R = np.linalg.inv(np.eye(self.p) + qh)
        q_new = qh @ R
        # Delta method: vec(dq) = (R (x) R) vec(dq_hat), on the free entries.
        # alpha enters through K (R ~ 1 / q_hat, so alpha K stays finite).
        K = self.alpha * np.kron(R, R)[self.rows * self.p + self.cols]
        cov = K @ qh_cov_per_alpha2 @ K.T
        out = self.to_vector(0.5 * (q_new + q_new.T)), cov, qh, mean_logZ
        self._last = (n, x.copy(), out)
        return out

    def jacobian(self, x, n):
        """Finite-difference Jacobian of the map at ``x`` (at most ``_JACOBIAN_SAMPLES`` samples)."""
        n = min(n, _JACOBIAN_SAMPLES)
        base = self(x, n)[0]
        J = np.empty((x.size, x.size))
        for k in range(x.size):
            # Step inwards for entries near 1 (the clip) and outwards near 0.
            # The step stays admissible (an off-diagonal step next to a
            # diagonal entry near 1 would not be): the clip bounds it.
            h = -_JACOBIAN_STEP if x[k] > 0.5 else _JACOBIAN_STEP
            shifted = x.copy()
            shifted[k] += h
            J[:, k] = (self(self.clip(shifted), n)[0] - base) / h
        return J


def _fixed_point_std(J, cov):
    """Standard errors of the fixed point ``x* = F(x*)`` from those of ``F``.

    ``dx* = (I - J)^{-1} dF`` (the implicit function theorem), so the
    Monte Carlo error of the map is amplified by ``1 / (1 - J)``; infinite at
    a marginally stable point.
    """
    I_minus_J = np.eye(J.shape[0]) - J
    try:
        S = np.linalg.solve(I_minus_J, np.linalg.solve(I_minus_J, cov).T)
    except np.linalg.LinAlgError:
        return np.full(J.shape[0], np.inf)
    return np.sqrt(np.clip(np.diag(S), 0.0, None))


def _anderson_proposal(xs, fs, beta):
    """Type-II Anderson extrapolation from iterates ``xs`` and residuals ``fs = F(x) - x``."""
    x, f = xs[-1], fs[-1]
    if len(xs) == 1:
        return x + beta * f
    dX = np.diff(np.array(xs), axis=0).T
    dF = np.diff(np.array(fs), axis=0).T
    gamma = np.linalg.lstsq(dF, f, rcond=None)[0]
    return x + beta * f - (dX + beta * dF) @ gamma


def _chord_operator(jacobian):
    """``(I - J)^{-1}`` for chord (frozen-Jacobian Newton) steps, or None.

    None when there is no Jacobian or it is not a contraction (spectral
    radius at least 1): Newton steps would then head for a fixed point the
    plain iteration leaves.
    """
    if jacobian is None or jacobian.size == 0:
        return None
    if np.max(np.abs(np.linalg.eigvals(jacobian))) >= 1.0:
        return None
    return np.linalg.inv(np.eye(jacobian.shape[0]) - jacobian)


def _skips_a_fixed_point(F, start, end, n):
    """Whether the map at ``n`` samples has a fixed point strictly between ``start`` and ``end``.

    The damped iteration from ``start`` moves along ``F(x) - x``; if that
    residual points back towards ``start`` somewhere on the segment, the
    iteration stops at a fixed point there and never reaches ``end``.  An
    extrapolated step can jump over such a point -- a stable fixed point and
    the unstable one bounding its basin, where the map has two stable
    branches next to a discontinuous transition -- so the segment is probed
    at ``_BRANCH_CHECKS`` interior points.
    """
    direction = end - start
    if float(np.max(np.abs(direction), initial=0.0)) < _BRANCH_CHECK_MIN_LENGTH:
        return False
    for t in np.arange(1, _BRANCH_CHECKS + 1) / (_BRANCH_CHECKS + 1):
        z = F.clip(start + t * direction)
        if float((F(z, n)[0] - z) @ direction) <= 0.0:
            return True
    return False


def _solve_stage(F, x, n, *, solver, damping, tol, monitor, trajectory, jacobian=None):
    """Iterate to a fixed point of ``F`` at ``n`` samples until a step is below ``tol``.

    With the ``jacobian`` of the map from the previous stage (a contraction),
    the first steps are chord steps ``x + (I - J)^{-1} (F(x) - x)``: a
    stage starts within the previous stage's Monte Carlo error of its fixed
    point, where the map is nearly linear, so one or two such steps replace
    the slow iteration of a marginally stable map (``J`` near 1 next to a
    transition).  They continue while the residual falls, then the stage
    goes on with ``solver``.

    With ``solver="anderson"`` the extrapolation is used only while the
    damped iteration contracts (the last step shorter than the one before): while a
    direction grows (the escape from a plateau near an unstable fixed
    point), extrapolating would jump back onto that unstable point, so plain
    damped steps are taken and the history is cleared.  A stage that does
    not start from a stable fixed point of the stage before (no chord
    steps) checks at the end that its extrapolations did not jump over a fixed point of
    the damped iteration (:func:`_skips_a_fixed_point`); if they did, it
    goes back to where it first extrapolated and continues with damped
    steps only, so that it returns the fixed point GAMP's trajectory
    reaches.  Every step is reported to ``monitor`` and its overlap
    appended to ``trajectory``.

    Returns ``(x, cov, converged, fields)`` with ``cov`` the Monte Carlo
    covariance of ``F`` at the last evaluation and ``fields`` the ``q_hat``
    and mean ``log Z_out`` there.  Stops early when the monitor's budget is
    spent.
    """
    xs, fs, steps = [], [], []
    best, stalled = np.inf, 0
    cov, fields = None, None
    chord, last_residual = _chord_operator(jacobian), np.inf
    # A stage without chord steps does not start from a stable fixed point
    # of the stage before (the first stage, or a restart off an unstable
    # one): its extrapolations are checked.  Where it first extrapolated
    # (None: damped steps only so far).
    check_branch, extrapolated_from = chord is None, None
    while monitor.n_iter < monitor.max_iter or cov is None:
        Fx, cov, qh, mean_logZ = F(x, n)
        fields = (qh, mean_logZ)
        f = Fx - x
        residual = float(np.max(np.abs(f), initial=0.0))
        contracting = len(steps) >= 2 and steps[-1] < steps[-2]
        chord = chord if residual < last_residual else None
        last_residual = residual
        if chord is not None:
            x_new = F.clip(x + chord @ f)
        elif solver == "anderson" and contracting:
            if extrapolated_from is None:
                extrapolated_from = x
            # A residual that does not decrease for a few steps means the
            # extrapolation is not helping: damped steps from here on.
            stalled = 0 if residual < best else stalled + 1
            best = min(best, residual)
            if stalled >= _ANDERSON_PATIENCE:
                solver = "damped"
            xs, fs = (xs + [x])[-_ANDERSON_MEMORY - 1:], (fs + [f])[-_ANDERSON_MEMORY - 1:]
            x_new = F.clip(_anderson_proposal(xs, fs, damping))
        else:
            xs, fs = [], []
            x_new = F.clip(x + damping * f)
        change = float(np.max(np.abs(x_new - x), initial=0.0))
        steps.append(change)
        x = x_new
        if monitor.n_iter < monitor.max_iter:
            monitor.report(np.trace(F.to_matrix(x)) / F.p, change=change)
            trajectory.append(F.to_matrix(x))
        if change < tol:
            if (check_branch and extrapolated_from is not None
                    and _skips_a_fixed_point(F, extrapolated_from, x, n)):
                x, solver, extrapolated_from = extrapolated_from, "damped", None
                xs, fs, steps = [], [], []
                continue
            return x, cov, True, fields
    return x, cov, False, fields


def _solve(F, x, *, solver, damping, tol, n_samples, target_std, min_samples, monitor,
           trajectory):
    """Adaptive-sample fixed point of the state evolution.

    Without ``target_std``: one stage at ``n_samples``.  With it: stages of
    growing sample counts from ``min_samples``, each solved only to the
    Monte Carlo resolution of its map, until the propagated standard error
    of the fixed point is below ``target_std`` (or ``n_samples`` is reached);
    the last stage is solved to ``tol``.  A fixed point that is unstable
    (spectral radius of the Jacobian above 1: the iteration from small
    ``q`` leaves it, but an extrapolation or an exact zero can sit on it) is
    left along its unstable direction, at most ``_MAX_RESTARTS`` times.

    Returns ``(x, x_std, n, J, converged, fields)``.
    """
    n = n_samples if target_std is None else min(min_samples, n_samples)
    restarts, J = 0, None
    while True:
        stage_tol = tol
        if target_std is not None and n < n_samples:
            # Converging beyond the Monte Carlo error of this stage is wasted.
            sigma = np.sqrt(np.max(np.diag(F(x, n)[1]), initial=0.0))
            stage_tol = max(tol, 0.5 * sigma)
        x, cov, converged, fields = _solve_stage(F, x, n, solver=solver, damping=damping,
                                                 tol=stage_tol, monitor=monitor,
                                                 trajectory=trajectory, jacobian=J)
        J = F.jacobian(x, n) if x.size else np.zeros((0, 0))
        w, U = np.linalg.eig(J) if x.size else (np.zeros(0), None)
        budget_left = monitor.n_iter < monitor.max_iter
        if converged and budget_left and restarts < _MAX_RESTARTS and np.any(np.abs(w) > 1):
            v = np.real(U[:, np.argmax(np.abs(w))])
            v = v if F.to_matrix(v).trace() >= 0 else -v
            x = F.clip(x + _RESTART_STEP * v / np.max(np.abs(v)))
            restarts += 1
            continue
        x_std = _fixed_point_std(J, cov)
        worst = float(np.max(x_std, initial=0.0))
        if target_std is None or n >= n_samples or not budget_left:
            return x, x_std, n, J, converged, fields
        if worst <= target_std:
            if stage_tol > tol:
                x, cov, converged, fields = _solve_stage(
                    F, x, n, solver=solver, damping=damping, tol=tol, monitor=monitor,
                    trajectory=trajectory, jacobian=J)
                x_std = _fixed_point_std(J, cov)
            return x, x_std, n, J, converged, fields
        # The error falls as 1 / sqrt(n): aim just past the target.
        grow = 1.2 * (worst / target_std) ** 2 if np.isfinite(worst) else 4.0
        n = int(min(n_samples, max(2 * n, np.ceil(n * grow))))


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
     "solver": [StrOptions({"damped", "anderson"})],
     "damping": [Interval(Real, 0, 1, closed="right")], "max_iter": [_COUNT],
     "tol": [Interval(Real, 0, None, closed="left")], "n_samples": [_COUNT],
     "target_std": [Interval(Real, 0, None, closed="neither"), None],
     "min_samples": [StrictIntInterval(2, None, closed="left")],
     "compute_test_errors": ["boolean"], "n_inner": [StrictIntInterval(2, None, closed="left")],
     "random_state": _SEED},
    prefer_skip_nested_validation=True,
)
def state_evolution(channel, alpha, *, q_init=0.05, directions=None, solver="anderson",
                    damping=0.8, max_iter=100, tol=1e-4, n_samples=20000, target_std=None,
                    min_samples=1000, compute_test_errors=True, n_inner=32, random_state=0):
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
    solver : {"anderson", "damped"}, default="anderson"
        Fixed-point solver.  "anderson" extrapolates from the last 5 iterates
        (Anderson acceleration, with ``damping`` as its mixing), falling back
        to damped steps when the residual stops decreasing, and, when the
        fixed point it finds is unstable for the plain iteration (spectral
        radius of the linearised map above 1, e.g. ``q = 0`` above the
        threshold), restarting damped steps along the unstable direction, so
        that it returns the fixed point reached from small ``q``; with
        ``target_std``, each larger sample stage starts with chord steps
        through the previous stage's Jacobian.  "damped" iterates
        ``q <- damping * q_new + (1 - damping) * q_old``: it reaches the same
        fixed point of the same Monte Carlo map (to ``tol``) in several times
        more iterations, and its ``history`` follows the trajectory of GAMP's
        overlaps.
    damping : float, default=0.8
        Step of the damped iteration, mixing of the Anderson one.
    max_iter : int, default=100
        Maximum number of iterations (all sample stages together).
    tol : float, default=1e-4
        Stop when the largest absolute change of ``q`` in one iteration is
        below ``tol`` (``tol=0`` runs exactly ``max_iter`` iterations, and
        warns).
    n_samples : int, default=20000
        Monte Carlo samples of ``(xi, eta)`` (fixed across iterations); with
        ``target_std``, the largest number used.
    target_std : float, default=None
        Adaptive Monte Carlo: start with ``min_samples`` samples, solve each
        stage only to the Monte Carlo resolution of its map, and grow the
        sample count (nested prefixes of one stream of draws) until the
        standard error ``q_std`` of the fixed point is at most
        ``target_std`` or ``n_samples`` is reached.  None uses ``n_samples``
        throughout.
    min_samples : int, default=1000
        First sample count of the adaptive Monte Carlo (``target_std`` set).
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
        ``alpha`` times a constant that does not depend on ``q``);
        ``q_std`` (p, p), the Monte Carlo standard error of ``q`` (that of
        the map, from the per-sample variance, propagated to the fixed point
        through ``(I - J)^{-1}``, ``J`` the finite-difference Jacobian of the
        map at ``q``; zero outside ``directions``); ``jacobian_radius``, the
        spectral radius of ``J`` (below 1 at a stable fixed point);
        ``n_samples`` the number of samples of the final stage; and, if
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
    F = _OverlapMap(channel, alpha, mask, xi, eta, draw_seed(rng))
    x = F.to_vector(_clip_overlap(_as_overlap(q_init, p, "q_init") * mask))
    trajectory = [F.to_matrix(x)]
    monitor = ConvergenceMonitor(tol=tol, max_iter=max_iter, label="state_evolution",
                                 objective_name="overlap")
    x, x_std, n_used, J, _, (qh, mean_logZ) = _solve(
        F, x, solver=solver, damping=damping, tol=tol, n_samples=n_samples,
        target_std=target_std, min_samples=min_samples, monitor=monitor,
        trajectory=trajectory)
    monitor.finish()
    q, q_std = F.to_matrix(x), F.to_matrix(x_std)
    free_entropy = (-0.5 * np.trace(q @ qh) + 0.5 * (np.trace(qh) - np.linalg.slogdet(
        np.eye(p) + qh)[1]) + alpha * mean_logZ)
    weight_mse = float(np.trace(np.eye(p) - q) / p)
    history = np.array(trajectory)
    if result_reference is not None:
        q, qh, history = (move_like(a, result_reference) for a in (q, qh, history))
    result = Bunch(q=q, q_hat=qh, history=history, n_iter=monitor.n_iter,
                   converged=monitor.converged, monitor_history=monitor.history,
                   weight_mse=weight_mse, free_entropy=float(free_entropy), q_std=q_std,
                   jacobian_radius=float(np.max(np.abs(np.linalg.eigvals(J)), initial=0.0)),
                   n_samples=n_used)
    if compute_test_errors:
        err = test_errors(channel, q, n_samples=n_used, n_inner=n_inner,
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


def _symmetric_eigen(K, r):
    """Eigenpairs of the operator ``K`` restricted to symmetric r x r matrices, ascending.

    Returns the eigenvalues and the eigenvectors as r x r matrices, each
    signed to have a non-negative trace.
    """
    T = np.zeros((r * r, r * r))
    for i in range(r):
        for j in range(r):
            T[i * r + j, j * r + i] = 1.0
    P = 0.5 * (np.eye(r * r) + T)
    S = P @ (0.5 * (K + K.T)) @ P
    w, U = np.linalg.eigh(S)
    vecs = U.T.reshape(-1, r, r)
    signs = np.where(np.trace(vecs, axis1=1, axis2=2) < 0, -1.0, 1.0)
    return w, vecs * signs[:, None, None]


def _top_eigen(K, r):
    """Top eigenpair of the operator ``K`` restricted to symmetric r x r matrices."""
    w, vecs = _symmetric_eigen(K, r)
    return float(w[-1]), vecs[-1]


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


# --------------------------------------------------------------------------
# Curves in alpha and staircase thresholds
# --------------------------------------------------------------------------


def _warm_start(q_prev, q_floor):
    """Initial overlap at the next ``alpha``: ``q_prev``, with its diagonal raised to ``q_floor``'s.

    Starting exactly at an uninformative ``q_kk = 0`` would stay there (a
    fixed point of even channels); the floor keeps the start of a cold
    ``state_evolution`` on those directions.
    """
    q = q_prev.copy()
    diag = np.diag_indices_from(q)
    q[diag] = np.maximum(q[diag], np.diag(q_floor))
    return _clip_overlap(q)


@validate_params(
    {"channel": _CHANNEL, "alphas": ["array-like"], "q_init": _OVERLAP,
     "warm_start": ["boolean"], "solver": [StrOptions({"damped", "anderson"})],
     "target_std": [Interval(Real, 0, None, closed="neither"), None]},
    prefer_skip_nested_validation=True,
)
def state_evolution_curve(channel, alphas, *, q_init=0.05, warm_start=True, solver="anderson",
                          target_std=0.005, **params):
    """State evolution along increasing sample ratios, warm-started from one to the next.

    Each point is :func:`state_evolution` at ``alphas[k]``; with
    ``warm_start`` it starts from the fixed point at ``alphas[k - 1]``
    (diagonal raised to that of ``q_init``), which follows the branch that
    GAMP reaches from small ``q`` and takes few iterations where the curve is
    smooth.  Every point uses the same ``random_state``, hence the same draws
    (common random numbers): the differences between neighbouring points are
    not blurred by independent Monte Carlo noise.

    Parameters
    ----------
    channel : channel object
        A channel from :mod:`skmoe.amp`.
    alphas : array-like of shape (n_alphas,)
        Strictly increasing positive sample ratios.
    q_init : float, array-like of shape (p,) or (p, p), default=0.05
        Initial overlap of the first point, and the floor of the diagonal of
        the warm starts.
    warm_start : bool, default=True
        Start each point from the previous fixed point; if False every
        point starts from ``q_init``.
    solver : {"damped", "anderson"}, default="anderson"
        Fixed-point solver, see :func:`state_evolution`.
    target_std : float or None, default=0.005
        Adaptive Monte Carlo target of the standard error of ``q``, see
        :func:`state_evolution`.
    **params
        Other parameters of :func:`state_evolution` (``n_samples``,
        ``min_samples``, ``max_iter``, ``tol``, ``directions``,
        ``compute_test_errors``, ``random_state``, ...).

    Returns
    -------
    result : Bunch
        ``alphas`` (n_alphas,); ``q`` and ``q_std`` (n_alphas, p, p);
        ``n_iter``, ``n_samples`` (n_alphas,) int; ``converged``
        (n_alphas,) bool; ``points``, the list of :func:`state_evolution`
        results.

    Examples
    --------
    >>> from skmoe.amp import AbsChannel, state_evolution_curve
    >>> curve = state_evolution_curve(AbsChannel(), [0.4, 1.0, 2.0], n_samples=4000,
    ...                               compute_test_errors=False)
    >>> bool(curve.q[0, 0, 0] < 0.05 < 0.5 < curve.q[2, 0, 0])
    True
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if (alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas))
            or np.any(alphas <= 0) or np.any(np.diff(alphas) <= 0)):
        raise ValueError(f"alphas must be a non-empty 1-D array of strictly increasing positive "
                         f"sample ratios, got {alphas!r}.")
    if "q_init" in params or "alpha" in params:
        raise TypeError("state_evolution_curve sets q_init and alpha of each point itself.")
    p = channel.n_directions
    q_floor = _clip_overlap(_as_overlap(q_init, p, "q_init"))
    points, start = [], q_floor
    for alpha in alphas:
        res = state_evolution(channel, float(alpha), q_init=start, solver=solver,
                              target_std=target_std, **params)
        points.append(res)
        if warm_start:
            start = _warm_start(to_numpy(res.q, dtype=np.float64), q_floor)
    return Bunch(alphas=alphas, q=np.array([to_numpy(r.q, dtype=np.float64) for r in points]),
                 q_std=np.array([r.q_std for r in points]),
                 n_iter=np.array([r.n_iter for r in points]),
                 n_samples=np.array([r.n_samples for r in points]),
                 converged=np.array([r.converged for r in points]), points=points)


#: Relative size of an eigenvector's diagonal entry for its direction to join
#: the block that becomes unstable (directions learned together).
_BLOCK_TOL = 0.1


def _unstable_block(stability, dirs):
    """Directions of ``dirs`` that become unstable together, from a ``weak_recovery_threshold`` result.

    The block is the union of the supports (diagonal entries at least
    ``_BLOCK_TOL`` of the largest) of the eigenvectors whose eigenvalue ties
    with the top one, within twice its numerical uncertainty: a degenerate
    top eigenvalue (e.g. independent directions with the same threshold)
    has an arbitrary eigenvector in its eigenspace, and all its directions
    are learned at once.
    """
    w, vecs = _symmetric_eigen(stability.operator, len(dirs))
    top = w[-1]
    top_std = top**2 * stability.threshold_std  # lambda = 1 / threshold
    tied = w >= top - max(2.0 * top_std, 1e-8 * abs(top))
    weight = np.max(np.abs(np.diagonal(vecs[tied], axis1=1, axis2=2)), axis=0)
    return np.sort(dirs[weight >= _BLOCK_TOL * weight.max()])


@validate_params(
    {"channel": _CHANNEL, "alpha_max": [Interval(Real, 0, None, closed="neither")],
     "xtol": [Interval(Real, 0, None, closed="neither")], "n_samples": [_COUNT],
     "n_batches": [StrictIntInterval(2, None, closed="left")], "se_params": [dict, None],
     "random_state": [Integral]},
    prefer_skip_nested_validation=True,
)
def staircase_thresholds(channel, *, alpha_max=10.0, xtol=2e-3, n_samples=20000, n_batches=10,
                         se_params=None, random_state=0):
    """Weak-recovery thresholds of the staircase, block by block, and the learning order.

    The first block is the support of the unstable direction of ``q = 0``,
    at ``alpha_1 = 1 / lambda_max(F)`` (:func:`weak_recovery_threshold`).
    Given the learned directions ``S``, the next block becomes unstable at
    the ``alpha`` where

    .. math::

        \\alpha\\,\\lambda_{\\max}\\mathcal F_\\perp(q_S^*(\\alpha)) = 1,

    with ``q_S^*(alpha)`` the state-evolution fixed point restricted to
    ``S`` (:func:`state_evolution` with ``directions=S``) and
    ``F_perp`` the stability operator of the other directions conditioned on
    it (``learned_overlap``).  The root is bracketed by a geometric scan
    upwards from the previous threshold and refined by Brent's method; the
    same seeds at every ``alpha`` (common random numbers) make the left-hand
    side a smooth function of ``alpha``.

    Parameters
    ----------
    channel : channel object
        An even channel from :mod:`skmoe.amp`.
    alpha_max : float, default=10.0
        Largest sample ratio searched; a block not unstable below it gets
        threshold ``inf``.
    xtol : float, default=2e-3
        Absolute tolerance of the root in ``alpha``.
    n_samples : int, default=20000
        Monte Carlo samples of each stability operator.
    n_batches : int, default=10
        Batches of those samples, for the standard errors.
    se_params : dict, default=None
        Parameters of the inner :func:`state_evolution` calls; default
        ``solver="anderson"``, ``target_std=0.005``,
        ``compute_test_errors=False``.
    random_state : int, default=0
        Seed of every Monte Carlo draw (the same at every ``alpha``).

    Returns
    -------
    result : Bunch
        ``thresholds`` and ``thresholds_std`` (n_blocks,); ``order``, the
        list of blocks (sorted lists of direction indices) in the order
        they are learned; ``learned_overlaps``, the overlap ``q_S^*`` of the
        directions already learned at each threshold ((p, p) each, zero for
        the first).  The standard error combines the Monte Carlo error of the
        operator (batch means) with that of ``q_S^*`` (``q_std``), both
        divided by the slope of ``alpha lambda_max`` at the root.

    Examples
    --------
    >>> from skmoe.amp import SquareChannel, staircase_thresholds
    >>> res = staircase_thresholds(SquareChannel(n_tokens=2))
    >>> round(float(res.thresholds[0]), 3), res.order
    (0.25, [[0]])
    """
    channel.check_posterior_support()
    p = channel.n_directions
    se_params = {"solver": "anderson", "target_std": 0.005, "compute_test_errors": False,
                 **(se_params or {})}
    for name in ("directions", "alpha", "q_init"):
        if name in se_params:
            raise ValueError(f"se_params cannot set {name!r} (staircase_thresholds sets it).")
    stability = dict(n_samples=n_samples, n_batches=n_batches, random_state=random_state)
    first = weak_recovery_threshold(channel, **stability)
    block = _unstable_block(first, np.arange(p))
    thresholds, stds, order = [first.threshold], [first.threshold_std], [block]
    learned_overlaps = [np.zeros((p, p))]
    learned = block
    while learned.size < p and np.isfinite(thresholds[-1]):
        rest = np.setdiff1d(np.arange(p), learned)
        root = _staircase_root(channel, learned, rest, thresholds[-1], alpha_max, xtol,
                               se_params, stability, random_state)
        thresholds.append(root.alpha)
        stds.append(root.std)
        learned_overlaps.append(root.q)
        if not np.isfinite(root.alpha):
            order.append(rest)
            break
        block = _unstable_block(root.stability, rest)
        order.append(block)
        learned = np.union1d(learned, block)
    return Bunch(thresholds=np.array(thresholds), thresholds_std=np.array(stds),
                 order=[[int(k) for k in b] for b in order],
                 learned_overlaps=learned_overlaps)


def _staircase_root(channel, learned, rest, alpha_lo, alpha_max, xtol, se_params, stability,
                    random_state):
    """Root of ``alpha lambda_max F_rest(q_learned^*(alpha)) = 1`` above ``alpha_lo``."""
    cache = {}

    def evaluate(alpha):
        if alpha not in cache:
            se = state_evolution(channel, alpha, directions=learned, random_state=random_state,
                                 **se_params)
            q = to_numpy(se.q, dtype=np.float64)
            stab = weak_recovery_threshold(channel, directions=rest, learned_overlap=q,
                                           method="mc", **stability)
            cache[alpha] = (alpha * stab.eigenvalue - 1.0, se, stab)
        return cache[alpha]

    # Geometric scan for a sign change, then Brent's method inside it.
    lo, hi = alpha_lo, alpha_lo * 1.5
    while evaluate(hi)[0] < 0:
        lo, hi = hi, hi * 1.5
        if lo >= alpha_max:
            return Bunch(alpha=np.inf, std=np.nan, q=to_numpy(evaluate(lo)[1].q),
                         stability=None)
    if evaluate(lo)[0] > 0:  # already unstable where the previous block appeared
        alpha = lo
    else:
        alpha = brentq(lambda a: evaluate(a)[0], lo, hi, xtol=xtol)
    h, se, stab = evaluate(alpha)
    slope = (evaluate(hi)[0] - evaluate(lo)[0]) / (hi - lo)
    q = to_numpy(se.q, dtype=np.float64)
    # Error of h = alpha lambda - 1: the operator's (lambda = 1 / threshold)
    # and that of q* pushed through lambda by a finite difference.
    lam_std = stab.eigenvalue**2 * stab.threshold_std
    shifted = weak_recovery_threshold(channel, directions=rest,
                                      learned_overlap=_clip_overlap(q + se.q_std), method="mc",
                                      **stability)
    h_std = alpha * np.hypot(lam_std, shifted.eigenvalue - stab.eigenvalue)
    return Bunch(alpha=float(alpha), std=float(h_std / max(slope, 1e-12)), q=q,
                 stability=stab)
